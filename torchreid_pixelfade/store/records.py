"""The images a protection run reads: one :class:`ImageRecord` per input file."""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence


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


def evenly_spaced(records: Sequence[ImageRecord], limit: int | None) -> list[ImageRecord]:
    """At most ``limit`` records per split, evenly spaced (deterministic; spans identities)."""
    if not limit:
        return list(records)
    chosen = []
    for split in dict.fromkeys(r.split for r in records):
        chosen += spaced([r for r in records if r.split == split], limit)
    return chosen


def spaced(items: Sequence, limit: int) -> list:
    """At most ``limit`` of ``items``, evenly spaced over the whole sequence, in order."""
    step = max(1, len(items) / limit)
    return [items[int(i * step)] for i in range(min(limit, len(items)))]


def first_identities(records: Sequence[ImageRecord], max_ids: int | None) -> list[ImageRecord]:
    """Records of the first ``max_ids`` identities (all their images in every split), so a
    query/gallery subset keeps its matches."""
    if not max_ids:
        return list(records)
    kept = set(sorted({r.pid for r in records})[:max_ids])
    return [r for r in records if r.pid in kept]
