"""The protected folder, the artefact everything downstream reads: PNG files + a manifest.

Layout of a folder written by ``protect``::

    OUT/manifest.json              format, identity, source root, one entry per stored image
    OUT/manifest.part-0.jsonl      while a run is going: one JSON line per finished batch
    OUT/<dataset folders>/*.png    the protected images, in the dataset's own layout

A run appends its batches to a part file and merges the parts into ``manifest.json`` when it
ends; :meth:`ProtectedFolder.open` reads the manifest and any parts left by an interrupted run, so
a folder is readable (and resumable) at any moment. Merging is idempotent: an entry is keyed by
its output path and a skipped file by its source. Folders of format 1 (one ``manifest.json``
rewritten after every batch, identity stored as ``settings``) are read as well.

Evaluation, the evaluation hook, the protected dataset, the recovery attack, the report and the
demo read folders only through :class:`ProtectedFolder`.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
from typing import Sequence

import numpy as np
import torch

from ..io import load_images
from .identity import ProtectionIdentity

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PART_PATTERN = "manifest.part-*.jsonl"
MANIFEST_FORMAT = 2


def part_name(part: int | str) -> str:
    """File name of the manifest part a writer appends to (one per writer/rank)."""
    return f"manifest.part-{part}.jsonl"


@dataclasses.dataclass(frozen=True)
class StoredImage:
    """One protected image of a folder and what the run recorded about it.

    Attributes:
        key: path of the PNG relative to the folder.
        source: path of the original relative to the folder's source root.
        split: 'train', 'query' or 'gallery'.
        pid, camid: identity and camera labels.
        distance: feature distance of the stored image to its original (None if no model).
        constraint_met: whether the distance is within the protector's bound (None if n/a).
        replaced_fraction: fraction of values replaced at least once (None if n/a).
        seconds: protection time of the image's batch divided by its size.
    """

    key: str
    source: str
    split: str
    pid: int
    camid: int
    distance: float | None = None
    constraint_met: bool | None = None
    replaced_fraction: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict:
        """The manifest entry (the key is the entry's name, not repeated inside)."""
        data = dataclasses.asdict(self)
        del data["key"]
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, key: str, data: dict) -> "StoredImage":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(key=key, **{k: v for k, v in data.items() if k in known})


class ProtectedFolder:
    """A folder written by ``protect`` (or the evaluation hook), opened for reading.

    Use :meth:`open`; the attributes are read-only views of the manifest.

    Attributes:
        path: the folder.
        identity: the :class:`ProtectionIdentity` its images were made with.
        source_root: the dataset folder the originals' ``source`` paths start from.
        images: ``{key: StoredImage}``.
        skipped: ``[{'source': ..., 'error': ...}]`` inputs that could not be read.
    """

    def __init__(self, path: str, identity: ProtectionIdentity, source_root: str,
                 images: dict[str, StoredImage] | None = None,
                 skipped: Sequence[dict] = (), legacy_seconds: float | None = None) -> None:
        self.path = os.fspath(path)
        self.identity = identity
        self.source_root = source_root
        self.images = dict(images or {})
        self.skipped = list(skipped)
        self._legacy_seconds = legacy_seconds

    # ------------------------------------------------------------------ opening

    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        """Whether ``path`` holds a manifest (merged or parts)."""
        path = os.fspath(path)
        return os.path.exists(os.path.join(path, MANIFEST)) or bool(
            glob.glob(os.path.join(path, PART_PATTERN)))

    @classmethod
    def open(cls, path: str | os.PathLike) -> "ProtectedFolder":
        """Reads the manifest of ``path`` and any parts an unfinished run left.

        Raises:
            FileNotFoundError: if ``path`` holds no manifest.
            ValueError: for a corrupt manifest (the file and the problem are named).
        """
        path = os.fspath(path)
        manifest_path = os.path.join(path, MANIFEST)
        if not os.path.exists(manifest_path):
            raise FileNotFoundError(f"{manifest_path}: no manifest; point at a folder written "
                                    "by `protect`")
        folder = cls._from_manifest(path, _read_json(manifest_path))
        for part in sorted(glob.glob(os.path.join(path, PART_PATTERN))):
            for record in _read_lines(part):
                folder.add(record)
        return folder

    @classmethod
    def _from_manifest(cls, path: str, data: dict) -> "ProtectedFolder":
        where = os.path.join(path, MANIFEST)
        identity = data.get("identity", data.get("settings"))  # format 1 says "settings"
        if not isinstance(identity, dict) or "source_root" not in data:
            raise ValueError(f"{where}: not a protected-folder manifest (no identity/source_root)")
        try:
            images = {k: StoredImage.from_dict(k, e) for k, e in data.get("images", {}).items()}
            return cls(path, ProtectionIdentity.from_dict(identity), data["source_root"], images,
                       data.get("skipped", []), data.get("seconds"))
        except (TypeError, AttributeError) as error:
            raise ValueError(f"{where}: malformed manifest ({error})") from error

    def add(self, record: dict) -> None:
        """Adds one batch record of a part file (idempotent)."""
        for key, entry in record.get("images", {}).items():
            self.images[key] = StoredImage.from_dict(key, entry)
        known = {item["source"] for item in self.skipped}
        self.skipped += [s for s in record.get("skipped", []) if s["source"] not in known]

    def to_manifest(self) -> dict:
        """The merged ``manifest.json`` content (format 2)."""
        return {"format": MANIFEST_FORMAT, "identity": self.identity.to_dict(),
                "source_root": self.source_root,
                "images": {k: self.images[k].to_dict() for k in sorted(self.images)},
                "skipped": self.skipped}

    # ------------------------------------------------------------------ reading

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` the images were protected and stored at."""
        return self.identity.height, self.identity.width

    def entries(self, split: str | None = None) -> list[StoredImage]:
        """Stored images of ``split`` (None: all), sorted by key."""
        return [self.images[k] for k in sorted(self.images)
                if split is None or self.images[k].split == split]

    def protected_path(self, image: StoredImage) -> str:
        """Path of a stored PNG."""
        return os.path.join(self.path, image.key)

    def original_path(self, image: StoredImage) -> str:
        """Path of the original a stored image was made from."""
        return os.path.join(self.source_root, image.source)

    def pairs(self, split: str | None = None) -> tuple[list[str], list[str]]:
        """``(protected paths, original paths)`` of ``split``, in :meth:`entries` order."""
        entries = self.entries(split)
        return ([self.protected_path(e) for e in entries],
                [self.original_path(e) for e in entries])

    def labels(self, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(pids, camids)`` int arrays of ``split``, in :meth:`entries` order."""
        entries = self.entries(split)
        return (np.array([e.pid for e in entries], dtype=np.int64),
                np.array([e.camid for e in entries], dtype=np.int64))

    def load(self, split: str | None = None, which: str = "protected",
             size: tuple[int, int] | None = None) -> torch.Tensor:
        """``(N, 3, H, W)`` pixels in [0, 1] of the stored (``'protected'``) or original
        (``'original'``) images of ``split``, at ``size`` (None: the stored size)."""
        if which not in ("protected", "original"):
            raise ValueError(f"which must be 'protected' or 'original', got {which!r}")
        paths = self.pairs(split)[0 if which == "protected" else 1]
        return load_images(paths, *(size or self.image_size))

    def load_pairs(self, split: str | None = None, size: tuple[int, int] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(protected, originals)`` of ``split`` (see :meth:`load`)."""
        return self.load(split, "protected", size), self.load(split, "original", size)

    def summary(self) -> dict:
        """Protector name, steps, constraint-met fraction and seconds per image."""
        entries = list(self.images.values())
        met = [e.constraint_met for e in entries if e.constraint_met is not None]
        seconds = self._legacy_seconds
        if seconds is None:
            seconds = sum(e.seconds or 0.0 for e in entries)
        return {"name": self.identity.protector,
                "steps": self.identity.hparams.get("steps", 0),
                "constraint_met_fraction": float(np.mean(met)) if met else None,
                "seconds_per_image": seconds / max(len(entries), 1)}

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (f"ProtectedFolder({self.path!r}, {len(self)} images, "
                f"protector={self.identity.protector!r})")


def _read_json(path: str) -> dict:
    with open(path) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: corrupt manifest ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: corrupt manifest (not a JSON object)")
    return data


def _read_lines(path: str) -> list[dict]:
    """Batch records of a part file; a last line cut short by an interruption is ignored (its
    images are protected again), a damaged line elsewhere is an error."""
    with open(path) as handle:
        lines = handle.read().split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):  # no newline after it: the write was interrupted
                logger.warning("%s: ignoring an unfinished last line", path)
                continue
            raise ValueError(f"{path}, line {number}: corrupt manifest part ({error})") from error
    return records
