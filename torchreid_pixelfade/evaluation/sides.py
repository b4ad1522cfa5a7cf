"""Features of one side of a cross-modal evaluation, always from image files read from disk.

A *side* is the images of one modality that a retrieval compares (the IR test images of the
visible-infrared scenario, the test gallery of text-to-image): their L2-normalised features per
form (``"original"`` and, for a protected side, ``"protected"``), their labels, and for a
protected side the privacy of each stored image against its original. The engines build their
sides here and rank them with their own protocols:

- :func:`path_features` / :func:`original_side`: originals of a list of records;
- :func:`stored_entries` / :func:`protected_side`: the stored PNGs of a
  :class:`~torchreid_pixelfade.store.ProtectedFolder` and the originals they were made from,
  both read through the folder at its stored size, with per-image SSIM / PSNR / AD;
- :func:`privacy_means`: ``results.json``'s ``privacy`` of those per-image values.

PixelFade's eps for a side's authorised model is calibrated by
:func:`torchreid_pixelfade.protect.calibration.flip_calibrated_eps`.

Records are any objects with ``path``, ``relpath``, ``pid``, ``camid`` and ``output_key``
(:class:`~torchreid_pixelfade.store.ImageRecord` and its subclasses).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..io import load_images
from ..metrics import privacy_metrics
from ..models import AuthorizedModel
from ..store import ImageRecord, ProtectedFolder, StoredImage
from .features import extract_features

__all__ = ["Side", "original_side", "path_features", "privacy_means",
           "protected_side", "record_labels", "stored_entries"]


@dataclasses.dataclass
class Side:
    """Features and labels of one side's images.

    Attributes:
        features: ``{form: (N, D)}`` L2-normalised float features on CPU; forms ``"original"``
            and, for a protected side, ``"protected"``.
        pids, camids: ``(N,)`` int64 labels, in record order.
        privacy: per-image ``{"ssim", "psnr", "ad"}`` ``(N,)`` float64 arrays of a protected
            side (stored PNG vs original), else empty.
    """

    features: dict
    pids: np.ndarray
    camids: np.ndarray
    privacy: dict = dataclasses.field(default_factory=dict)


def record_labels(records: Sequence[ImageRecord]) -> tuple[np.ndarray, np.ndarray]:
    """``(pids, camids)`` ``(N,)`` int64 arrays of ``records``, in their order."""
    return (np.array([r.pid for r in records], np.int64),
            np.array([r.camid for r in records], np.int64))


@torch.no_grad()
def path_features(model: AuthorizedModel, paths: Sequence[str], height: int, width: int,
                  batch_size: int = 128, device: str | torch.device = "cpu") -> torch.Tensor:
    """``(N, D)`` L2-normalised features of image files, read ``batch_size`` at a time.

    Images are resized (bilinear, as :func:`~torchreid_pixelfade.io.load_images`) to
    ``height x width`` and given to ``model`` as pixels in [0, 1]; only one batch of pixels is
    in memory at once. The result does not depend on ``batch_size``.

    Raises:
        ValueError: for no paths. ImageReadError: for an unreadable file (named).
    """
    chunks = [extract_features(model, load_images(paths[i:i + batch_size], height, width),
                               batch_size, device) for i in range(0, len(paths), batch_size)]
    if not chunks:
        raise ValueError("no images to extract features from")
    return F.normalize(torch.cat(chunks), dim=1)


def original_side(model: AuthorizedModel, records: Sequence[ImageRecord], height: int,
                  width: int, batch_size: int = 128, device: str | torch.device = "cpu") -> Side:
    """The original images of ``records`` (form ``"original"`` only), read from ``r.path``."""
    features = path_features(model, [r.path for r in records], height, width, batch_size, device)
    return Side({"original": features}, *record_labels(records))


def stored_entries(folder: ProtectedFolder, records: Sequence[ImageRecord],
                   what: str = "test images") -> list[StoredImage]:
    """The stored image of each record (by its ``output_key``), in record order.

    Args:
        folder: the protected folder.
        records: the images that must be stored in it.
        what: what the records are, for messages (``"IR test images"``).

    Raises:
        ValueError: naming the folder, if a record has no stored image or its stored image was
            made from another source file.
    """
    missing = [r.output_key for r in records if r.output_key not in folder.images]
    if missing:
        raise ValueError(f"{folder.path}: {len(missing)} of {len(records)} {what} are not "
                         f"stored (first: {missing[0]}); run the protection first")
    entries = [folder.images[r.output_key] for r in records]
    other = [e.key for e, r in zip(entries, records) if e.source != r.relpath]
    if other:
        raise ValueError(f"{folder.path}: {other[0]} was made from another source image")
    return entries


@torch.no_grad()
def protected_side(model: AuthorizedModel, folder: ProtectedFolder,
                   records: Sequence[ImageRecord], batch_size: int = 128,
                   device: str | torch.device = "cpu", what: str = "test images") -> Side:
    """The originals and the stored PNGs of ``records``, with per-image privacy.

    Both forms are read from disk through the folder (:meth:`ProtectedFolder.protected_path`,
    :meth:`~ProtectedFolder.original_path`) at its stored size, ``batch_size`` images at a time;
    privacy compares each stored PNG with its original at that size.

    Args:
        model: the model extracting features (pixels in [0, 1] -> ``(B, D)``).
        folder: the protected folder.
        records: the side's images, all stored in ``folder``.
        batch_size, device: image loading and feature extraction.
        what: what the records are, for messages.

    Returns:
        A :class:`Side` with forms ``"original"`` and ``"protected"`` and ``privacy``.

    Raises:
        ValueError: for no records, or as :func:`stored_entries`.
    """
    if not records:
        raise ValueError(f"{folder.path}: no {what} to evaluate")
    entries = stored_entries(folder, records, what)
    height, width = folder.image_size
    features = {"original": [], "protected": []}
    privacy = {"ssim": [], "psnr": [], "ad": []}
    for start in range(0, len(entries), batch_size):
        chunk = entries[start:start + batch_size]
        pixels = {"original": load_images([folder.original_path(e) for e in chunk], height,
                                          width),
                  "protected": load_images([folder.protected_path(e) for e in chunk], height,
                                           width)}
        for form, images in pixels.items():
            features[form].append(extract_features(model, images, batch_size, device))
        for name, values in privacy_metrics(pixels["protected"], pixels["original"]).items():
            privacy[name].append(values)
    return Side({form: F.normalize(torch.cat(chunks), dim=1) for form, chunks in features.items()},
                *record_labels(records),
                privacy={name: np.concatenate(values) for name, values in privacy.items()})


def privacy_means(per_image: dict) -> dict:
    """``results.json``'s ``privacy``: the means of per-image SSIM, PSNR (dB) and AD, and the
    median AD (its distribution is skewed), as python floats.

    Raises:
        ValueError: if a value is missing or empty.
    """
    missing = [k for k in ("ssim", "psnr", "ad") if len(per_image.get(k, ())) == 0]
    if missing:
        raise ValueError(f"no per-image privacy values for {missing}")
    return {"ssim": float(np.mean(per_image["ssim"])), "psnr": float(np.mean(per_image["psnr"])),
            "ad": float(np.mean(per_image["ad"])), "ad_median": float(np.median(per_image["ad"]))}
