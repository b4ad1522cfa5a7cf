"""Protected images stored as a cloud service would hold them: 8-bit PNG + ``manifest.json``.

The output folder mirrors the input dataset (same sub-folders and file names, extension ``.png``).
``manifest.json`` records the protector, its hyper-parameters, the model and the SHA-256 of its
weights, and per image the source file, split, identity, camera and diagnostics. It is rewritten
atomically after every batch, so an interrupted run resumes where it stopped; a re-run with the
same settings skips finished images, a re-run with other settings is refused.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Iterable, Sequence

import torch
from torchvision.transforms import functional as TF
from tqdm import tqdm

from .io import ImageReadError, atomic_write_json, read_image, write_png
from .protect import Protector

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image of a Re-ID split: absolute path, path relative to the dataset folder, labels."""

    path: str
    relpath: str
    pid: int
    camid: int
    split: str

    @property
    def output_key(self) -> str:
        """Relative path of the protected PNG (same folders and name, extension ``.png``)."""
        return os.path.splitext(self.relpath)[0] + ".png"


def records_from_items(items: dict[str, Sequence[tuple]], base: str | None = None
                       ) -> tuple[str, list[ImageRecord]]:
    """Image records of torchreid data lists ``{split: [(path, pid, camid, ...), ...]}``.

    Returns:
        ``(source_root, records)``: record paths are relative to ``source_root``, which is
        ``base`` when it holds every image, else the images' common folder.
    """
    paths = [os.path.abspath(item[0]) for split_items in items.values() for item in split_items]
    if not paths:
        raise ValueError(f"No images in the splits {list(items)}")
    base = os.path.abspath(base) if base else ""
    if not base or not all(p.startswith(base + os.sep) for p in paths):
        base = os.path.commonpath([os.path.dirname(p) for p in paths])
    return base, [ImageRecord(os.path.abspath(item[0]), os.path.relpath(item[0], base),
                              int(item[1]), int(item[2]), split)
                  for split, split_items in items.items() for item in split_items]


def records_from_dataset(dataset, splits: Sequence[str] = ("query", "gallery")
                         ) -> tuple[str, list[ImageRecord]]:
    """Image records of a torchreid ``ImageDataset`` (``.train/.query/.gallery`` lists),
    relative to its ``dataset_dir`` (see :func:`records_from_items`)."""
    return records_from_items({split: getattr(dataset, split) for split in splits},
                              getattr(dataset, "dataset_dir", None))


def load_image_tensor(path: str, height: int, width: int) -> torch.Tensor:
    """Reads an image as a ``(3, H, W)`` float tensor in [0, 1], resized like torchreid's test
    transform (bilinear ``Resize((H, W))``).

    Raises:
        ImageReadError: naming the file when it cannot be read.
    """
    image = read_image(path)
    if image.size != (width, height):
        image = TF.resize(image, [height, width])
    return TF.to_tensor(image)


def load_images(paths: Sequence[str], height: int, width: int) -> torch.Tensor:
    """``(N, 3, H, W)`` pixel tensor of the images at ``paths`` (resized like torchreid)."""
    return torch.stack([load_image_tensor(p, height, width) for p in paths])


def stored_pairs(out_dir: str, manifest: dict, split: str | None = None
                 ) -> tuple[list[str], list[str], list[str]]:
    """Output keys, protected paths and original paths of a ``protect`` folder, sorted by key.

    Args:
        out_dir: the folder; ``manifest`` its manifest; ``split`` keeps one split (None: all).
    """
    keys = sorted(k for k, e in manifest["images"].items() if split in (None, e["split"]))
    return (keys, [os.path.join(out_dir, k) for k in keys],
            [os.path.join(manifest["source_root"], manifest["images"][k]["source"]) for k in keys])


def load_stored_pairs(out_dir: str, manifest: dict, height: int | None = None,
                      width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(protected, originals)``: ``(N, 3, H, W)`` tensors in [0, 1] of a ``protect`` folder, in
    :func:`stored_pairs` order, at ``height x width`` (None: the size stored in the manifest)."""
    height = height or manifest["settings"]["height"]
    width = width or manifest["settings"]["width"]
    _, protected, originals = stored_pairs(out_dir, manifest)
    return load_images(protected, height, width), load_images(originals, height, width)


def load_manifest(out_dir: str) -> dict | None:
    """The manifest of ``out_dir``, or None if there is none yet."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: corrupt manifest ({error})") from error


def _new_manifest(settings: dict, source_root: str) -> dict:
    return {"format": MANIFEST_FORMAT, "settings": settings, "source_root": source_root,
            "images": {}, "skipped": [], "seconds": 0.0, "num_protected": 0}


def _open_manifest(out_dir: str, settings: dict, source_root: str) -> dict:
    manifest = load_manifest(out_dir)
    if manifest is None:
        return _new_manifest(settings, source_root)
    if manifest.get("settings") != settings:
        raise ValueError(
            f"{os.path.join(out_dir, MANIFEST)}: this folder holds images protected with other "
            f"settings ({manifest.get('settings')}); choose another output folder")
    return manifest


def _load_batch(records: Sequence[ImageRecord], height: int, width: int, skip_corrupt: bool,
                manifest: dict) -> tuple[list[ImageRecord], list[torch.Tensor]]:
    kept, tensors = [], []
    for record in records:
        try:
            tensors.append(load_image_tensor(record.path, height, width))
            kept.append(record)
        except ImageReadError as error:
            if not skip_corrupt:
                raise
            logger.warning("skipping %s", error)
            manifest["skipped"].append({"source": record.relpath, "error": str(error)})
    return kept, tensors


def _record_entries(manifest: dict, records: Sequence[ImageRecord], result) -> None:
    for i, record in enumerate(records):
        entry = {"source": record.relpath, "split": record.split, "pid": record.pid,
                 "camid": record.camid}
        if result.distance is not None:
            entry["distance"] = float(result.distance[i])
        if result.constraint_met is not None:
            entry["constraint_met"] = bool(result.constraint_met[i])
        if result.replaced_fraction is not None:
            entry["replaced_fraction"] = float(result.replaced_fraction[i])
        manifest["images"][record.output_key] = entry


def pending(records: Iterable[ImageRecord], manifest: dict, out_dir: str) -> list[ImageRecord]:
    """Records not yet protected (no manifest entry or no file) and not listed as skipped."""
    skipped = {item["source"] for item in manifest["skipped"]}
    return [r for r in records if r.relpath not in skipped and not (
        r.output_key in manifest["images"] and os.path.exists(os.path.join(out_dir, r.output_key)))]


def protect_records(protector: Protector, records: Sequence[ImageRecord], out_dir: str,
                    settings: dict, source_root: str, height: int, width: int,
                    batch_size: int = 32, device: str | torch.device = "cpu",
                    skip_corrupt: bool = False, progress: bool = True) -> dict:
    """Protects images into ``out_dir`` as PNG files and returns the manifest.

    Args:
        protector: any protector; its model must be on ``device``.
        records: images to protect (see :func:`records_from_dataset`).
        out_dir: output folder; created if needed. Inputs are never modified.
        settings: what identifies the protection (protector, hyper-parameters, model, weights
            hash, image size); a folder holds one setting only.
        source_root: the dataset folder the records' relative paths start from.
        height, width: size images are resized to before protection (and stored at).
        batch_size: images per protector call.
        device: where images are protected.
        skip_corrupt: list unreadable images in the manifest instead of raising.
        progress: show a tqdm progress bar.

    Raises:
        ImageReadError: for an unreadable image when ``skip_corrupt`` is False.
        ValueError: if ``out_dir`` holds images protected with other settings.
    """
    os.makedirs(out_dir, exist_ok=True)
    manifest = _open_manifest(out_dir, settings, source_root)
    todo = pending(records, manifest, out_dir)
    if len(todo) < len(records):
        logger.info("%s: %d of %d images already protected, resuming", out_dir,
                    len(records) - len(todo), len(records))
    bar = tqdm(total=len(todo), desc=f"protect ({protector.name})", unit="img",
               disable=not progress)
    for start in range(0, len(todo), batch_size):
        kept, tensors = _load_batch(todo[start:start + batch_size], height, width, skip_corrupt,
                                    manifest)
        if kept:
            began = time.perf_counter()
            result = protector.protect(torch.stack(tensors).to(device))
            manifest["seconds"] += time.perf_counter() - began
            manifest["num_protected"] += len(kept)
            for record, image in zip(kept, result.images):
                write_png(os.path.join(out_dir, record.output_key), image)
            _record_entries(manifest, kept, result)
        atomic_write_json(os.path.join(out_dir, MANIFEST), manifest)
        bar.update(len(todo[start:start + batch_size]))
    bar.close()
    return manifest
