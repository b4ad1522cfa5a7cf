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

A folder is untrusted input: :meth:`ProtectedFolder.open` refuses image keys and sources that are
absolute, hold ``..`` or NUL, and a source root that is relative or a file-system root;
:meth:`~ProtectedFolder.protected_path` and :meth:`~ProtectedFolder.original_path` resolve links
and refuse a path that ends outside the folder or the source root (see :mod:`.paths`). Each entry
written by this version records its PNG's size and SHA-256 (``png_bytes``, ``png_sha256``), which
a resuming run checks before it keeps the file.
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

from ..io import ImageReadError, load_images, read_image
from .identity import ProtectionIdentity, file_sha256
from .paths import check_relative, check_root, confined

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
        steps: forward and backward passes the protector spent on the image (None where it
            does not count them, e.g. a one-shot protector, or in older folders).
        png_sha256, png_bytes: SHA-256 and size of the PNG file as written (None in folders
            written before they were recorded).
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
    steps: int | None = None
    png_sha256: str | None = None
    png_bytes: int | None = None

    def to_dict(self) -> dict:
        """The manifest entry (the key is the entry's name, not repeated inside)."""
        data = dataclasses.asdict(self)
        del data["key"]
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, key: str, data: dict, where: str = "manifest") -> "StoredImage":
        """Reads one manifest entry, refusing paths that would leave the folder or source root.

        Raises:
            ValueError: naming ``where`` and the entry, for an unsafe path or a malformed entry.
        """
        where = f"{where}, image {key!r}"
        check_relative(key, f"{where}: key")
        if not isinstance(data, dict):
            raise ValueError(f"{where}: malformed manifest entry (not a JSON object)")
        check_relative(data.get("source"), f"{where}: source")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(key=key, **{k: v for k, v in data.items() if k in known})
        except TypeError as error:
            raise ValueError(f"{where}: malformed manifest entry ({error})") from error


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
        self.skipped = skipped
        self._legacy_seconds = legacy_seconds

    # ------------------------------------------------------------------ opening

    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        """Whether ``path`` holds a manifest (merged or parts)."""
        path = os.fspath(path)
        return os.path.exists(os.path.join(path, MANIFEST)) or bool(
            glob.glob(os.path.join(path, PART_PATTERN)))

    @classmethod
    def open(cls, path: str | os.PathLike, source_root: str | os.PathLike | None = None
             ) -> "ProtectedFolder":
        """Reads the manifest of ``path`` and any parts an unfinished run left.

        Args:
            path: the folder.
            source_root: the folder the originals are read from, instead of the one the manifest
                records (for a folder from elsewhere, or whose dataset moved).

        Raises:
            FileNotFoundError: if ``path`` holds no manifest.
            ValueError: for a corrupt manifest, or one naming a path outside the folder or the
                source root (the file, the entry and the problem are named).
        """
        path = os.fspath(path)
        manifest_path = os.path.join(path, MANIFEST)
        if not os.path.exists(manifest_path):
            raise FileNotFoundError(f"{manifest_path}: no manifest; point at a folder written "
                                    "by `protect`")
        if source_root is not None:
            source_root = check_root(os.path.abspath(os.path.expanduser(os.fspath(source_root))),
                                     "source_root override")
        folder = cls._from_manifest(path, _read_json(manifest_path), source_root)
        for part in sorted(glob.glob(os.path.join(path, PART_PATTERN))):
            for number, record in _read_lines(part):
                folder.add(record, f"{part}, line {number}")
        return folder

    @classmethod
    def _from_manifest(cls, path: str, data: dict, source_root: str | None = None
                       ) -> "ProtectedFolder":
        where = os.path.join(path, MANIFEST)
        identity = data.get("identity", data.get("settings"))  # format 1 says "settings"
        if not isinstance(identity, dict) or "source_root" not in data:
            raise ValueError(f"{where}: not a protected-folder manifest (no identity/source_root)")
        if source_root is None:
            source_root = check_root(data["source_root"], f"{where}: source_root")
        images, skipped = data.get("images", {}), data.get("skipped", [])
        if not isinstance(images, dict) or not isinstance(skipped, list):
            raise ValueError(f"{where}: malformed manifest (images or skipped of a wrong type)")
        try:
            identity = ProtectionIdentity.from_dict(identity)
        except (TypeError, AttributeError) as error:
            raise ValueError(f"{where}: malformed manifest ({error})") from error
        folder = cls(path, identity, source_root, legacy_seconds=data.get("seconds"))
        folder.add({"images": images, "skipped": skipped}, where)
        return folder

    @property
    def skipped(self) -> list[dict]:
        """``[{'source': ..., 'error': ...}]`` inputs that could not be read."""
        return list(self._skipped.values())

    @skipped.setter
    def skipped(self, items: Sequence[dict]) -> None:
        self._skipped = {item["source"]: item for item in items}

    def add(self, record: dict, where: str = "manifest part") -> None:
        """Adds one batch record of a part file (idempotent; a later record about a source wins:
        an image replaces its source's skip, a skip drops the source's image).

        Raises:
            ValueError: naming ``where``, for a malformed record or an unsafe path.
        """
        images, skipped = record.get("images", {}), record.get("skipped", [])
        if not isinstance(images, dict) or not isinstance(skipped, list):
            raise ValueError(f"{where}: malformed manifest record")
        for key, entry in images.items():
            image = StoredImage.from_dict(key, entry, where)
            self._skipped.pop(image.source, None)
            self.images[key] = image
        if skipped:
            self._add_skipped(skipped, where)

    def _add_skipped(self, skipped: list, where: str) -> None:
        keys_of = {}
        for key, image in self.images.items():
            keys_of.setdefault(image.source, []).append(key)
        for item in skipped:
            if not isinstance(item, dict):
                raise ValueError(f"{where}: malformed skipped entry {item!r}")
            source = check_relative(item.get("source"), f"{where}: skipped source")
            for key in keys_of.pop(source, []):
                del self.images[key]
            self._skipped.pop(source, None)
            self._skipped[source] = item

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
        """Path of a stored PNG.

        Raises:
            ValueError: if it resolves (links followed) outside the folder.
        """
        return confined(self.path, image.key, self._where(image), "the folder")

    def original_path(self, image: StoredImage) -> str:
        """Path of the original a stored image was made from.

        Raises:
            ValueError: if it resolves (links followed) outside the source root.
        """
        return confined(self.source_root, image.source, self._where(image), "the source root")

    def stored_problem(self, image: StoredImage) -> str | None:
        """What is wrong with a stored PNG, or None if it is as written.

        A file with a recorded hash must have that size and SHA-256; one of an older folder
        without a hash must decode.
        """
        path = self.protected_path(image)
        if not os.path.isfile(path):
            return "missing"
        if image.png_sha256 is None:
            try:
                read_image(path)
            except ImageReadError as error:
                return f"unreadable ({error})"
            return None
        size = os.path.getsize(path)
        if image.png_bytes is not None and size != image.png_bytes:
            return f"{size} bytes, {image.png_bytes} were written"
        if file_sha256(path) != image.png_sha256:
            return "its SHA-256 differs from the one recorded when it was written"
        return None

    def _where(self, image: StoredImage) -> str:
        return f"{os.path.join(self.path, MANIFEST)}, image {image.key!r}"

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
        """Protector name, its ``steps`` setting, the constraint-met fraction and the number of
        images that miss it (None for a protector without a bound), the passes actually spent
        per image (mean and max; None where not recorded) and seconds per image."""
        entries = list(self.images.values())
        met = [e.constraint_met for e in entries if e.constraint_met is not None]
        used = [e.steps for e in entries if e.steps is not None]
        seconds = self._legacy_seconds
        if seconds is None:
            seconds = sum(e.seconds or 0.0 for e in entries)
        return {"name": self.identity.protector,
                "steps": self.identity.hparams.get("steps", 0),
                "constraint_met_fraction": float(np.mean(met)) if met else None,
                "constraint_missed": met.count(False) if met else None,
                "steps_used_mean": float(np.mean(used)) if used else None,
                "steps_used_max": max(used) if used else None,
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


def _read_lines(path: str) -> list[tuple[int, dict]]:
    """``(line number, batch record)`` of a part file; a last line cut short by an interruption
    is ignored (its images are protected again), a damaged line elsewhere is an error."""
    with open(path) as handle:
        lines = handle.read().split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):  # no newline after it: the write was interrupted
                logger.warning("%s: ignoring an unfinished last line", path)
                continue
            raise ValueError(f"{path}, line {number}: corrupt manifest part ({error})") from error
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: corrupt manifest part (not an object)")
        records.append((number, record))
    return records
