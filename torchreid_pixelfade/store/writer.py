"""Writing a protected folder: the batch loop, resume, refusal of other settings, skipped inputs.

Each finished batch writes its PNG files (atomically) and then appends one JSON line to the run's
manifest part; the parts are merged into ``manifest.json`` at the end. Writing a batch costs the
batch's own bytes, never a rewrite of the whole manifest, and writers with different ``part``
names never write the same file.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import time
from typing import Iterable, Sequence

import torch
from tqdm import tqdm

from ..io import ImageReadError, atomic_write_json, load_image_tensor, write_png
from ..protect import Protector
from .folder import MANIFEST, PART_PATTERN, ProtectedFolder, StoredImage, part_name
from .identity import ProtectionIdentity
from .records import ImageRecord

logger = logging.getLogger(__name__)


def open_for_writing(out_dir: str, identity: ProtectionIdentity,
                     source_root: str) -> ProtectedFolder:
    """Opens ``out_dir`` to add images made with ``identity``, creating its manifest if needed.

    Raises:
        ValueError: if the folder holds images protected with other settings.
    """
    os.makedirs(out_dir, exist_ok=True)
    if not ProtectedFolder.exists(out_dir):
        folder = ProtectedFolder(out_dir, identity, source_root)
        atomic_write_json(os.path.join(out_dir, MANIFEST), folder.to_manifest())
        return folder
    folder = ProtectedFolder.open(out_dir)
    if not folder.identity.accepts(identity):
        raise ValueError(
            f"{os.path.join(out_dir, MANIFEST)}: this folder holds images protected with other "
            f"settings ({folder.identity.to_dict()}); choose another output folder")
    return folder


def pending(records: Iterable[ImageRecord], folder: ProtectedFolder) -> list[ImageRecord]:
    """Records not yet protected (no entry or no file) and not listed as skipped."""
    skipped = {item["source"] for item in folder.skipped}
    return [r for r in records if r.relpath not in skipped and not (
        r.output_key in folder.images and os.path.exists(os.path.join(folder.path, r.output_key)))]


def _load_batch(records: Sequence[ImageRecord], height: int, width: int, skip_corrupt: bool
                ) -> tuple[list[ImageRecord], list[torch.Tensor], list[dict]]:
    kept, tensors, skipped = [], [], []
    for record in records:
        try:
            tensors.append(load_image_tensor(record.path, height, width))
            kept.append(record)
        except ImageReadError as error:
            if not skip_corrupt:
                raise
            logger.warning("skipping %s", error)
            skipped.append({"source": record.relpath, "error": str(error)})
    return kept, tensors, skipped


def _stored_images(records: Sequence[ImageRecord], result, seconds: float) -> list[StoredImage]:
    def value(tensor, i, cast):
        return None if tensor is None else cast(tensor[i])

    return [StoredImage(key=r.output_key, source=r.relpath, split=r.split, pid=r.pid,
                        camid=r.camid, distance=value(result.distance, i, float),
                        constraint_met=value(result.constraint_met, i, bool),
                        replaced_fraction=value(result.replaced_fraction, i, float),
                        seconds=seconds / len(records))
            for i, r in enumerate(records)]


def _append(path: str, record: dict) -> None:
    """Appends one JSON line and flushes it to disk."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def merge_parts(folder: ProtectedFolder) -> None:
    """Writes the folder's merged ``manifest.json`` (atomically), then removes its parts."""
    atomic_write_json(os.path.join(folder.path, MANIFEST), folder.to_manifest())
    for part in glob.glob(os.path.join(folder.path, PART_PATTERN)):
        os.remove(part)


def protect_records(protector: Protector, records: Sequence[ImageRecord], out_dir: str,
                    identity: ProtectionIdentity, source_root: str, batch_size: int = 32,
                    device: str | torch.device = "cpu", skip_corrupt: bool = False,
                    progress: bool = True, part: int | str = 0) -> ProtectedFolder:
    """Protects images into ``out_dir`` as PNG files; returns the folder.

    Args:
        protector: any protector; its model must be on ``device``.
        records: images to protect (see :func:`records_from_dataset`).
        out_dir: output folder; created if needed. Inputs are never modified.
        identity: what identifies the protection (see :func:`protection_identity`); a folder
            holds one identity only. Images are resized to and stored at its size.
        source_root: the dataset folder the records' relative paths start from.
        batch_size: images per protector call.
        device: where images are protected.
        skip_corrupt: list unreadable images in the manifest instead of raising.
        progress: show a tqdm progress bar.
        part: name of this writer's manifest part.

    Raises:
        ImageReadError: for an unreadable image when ``skip_corrupt`` is False.
        ValueError: if ``out_dir`` holds images protected with other settings.
    """
    folder = open_for_writing(out_dir, identity, source_root)
    todo = pending(records, folder)
    if not todo and not glob.glob(os.path.join(out_dir, PART_PATTERN)):
        return folder  # all done before: nothing is written
    if len(todo) < len(records):
        logger.info("%s: %d of %d images already protected, resuming", out_dir,
                    len(records) - len(todo), len(records))
    part_path = os.path.join(out_dir, part_name(part))
    bar = tqdm(total=len(todo), desc=f"protect ({protector.name})", unit="img",
               disable=not progress)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        kept, tensors, skipped = _load_batch(batch, identity.height, identity.width,
                                             skip_corrupt)
        stored = []
        if kept:
            began = time.perf_counter()
            result = protector.protect(torch.stack(tensors).to(device))
            seconds = time.perf_counter() - began
            for record, image in zip(kept, result.images):
                write_png(os.path.join(out_dir, record.output_key), image)
            stored = _stored_images(kept, result, seconds)
        record = {"images": {s.key: s.to_dict() for s in stored}, "skipped": skipped}
        _append(part_path, record)
        folder.add(record)
        bar.update(len(batch))
    bar.close()
    merge_parts(folder)
    return folder
