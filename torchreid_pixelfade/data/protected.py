"""A torchreid image dataset that reads a folder written by ``protect`` (PNG + manifest).

Registered in torchreid as ``pixelfade_protected`` when this module is imported (importing
``torchreid_pixelfade.ProtectedImageDataset`` or calling ``register_datasets()`` does it), so
any torchreid ``ImageDataManager`` reads protected images:
``ImageDataManager(root=OUT, sources='pixelfade_protected', ...)``.
"""
from __future__ import annotations

import os

from .._torchreid import register_image_dataset, tr, transform_image
from ..io import read_image
from ..store import ProtectedFolder

DATASET_NAME = "pixelfade_protected"


def _split_items(folder: ProtectedFolder, split: str) -> list[tuple[str, int, int]]:
    return [(folder.protected_path(e), e.pid, e.camid) for e in folder.entries(split)]


def _relabel(items: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    labels = {pid: i for i, pid in enumerate(sorted({pid for _, pid, _ in items}))}
    return [(path, labels[pid], camid) for path, pid, camid in items]


class ProtectedImageDataset(tr.data.ImageDataset):
    """Protected query/gallery (and train, if protected) of a ``protect`` output folder.

    Args:
        root: the output folder of ``protect`` (holding ``manifest.json``).
        **kwargs: torchreid dataset arguments (``transform``, ``mode``, ...).

    torchreid needs a non-empty train split; when the train split was not protected, the
    protected gallery (identities relabelled from 0) stands in for it, which is enough for
    evaluation-only data managers.

    Raises:
        FileNotFoundError: if ``root`` has no manifest.
        ValueError: if it holds no protected query or gallery images.
    """

    dataset_dir = ""

    def __init__(self, root: str = "", **kwargs) -> None:
        self.root = self.dataset_dir = os.path.abspath(os.path.expanduser(root))
        folder = ProtectedFolder.open(self.root)
        query, gallery = _split_items(folder, "query"), _split_items(folder, "gallery")
        if not query or not gallery:
            raise ValueError(f"{self.root}: needs protected query and gallery images, found "
                             f"{len(query)} and {len(gallery)}")
        train = _relabel(_split_items(folder, "train") or gallery)
        super().__init__(train, query, gallery, **kwargs)

    def __getitem__(self, index: int) -> dict:
        """torchreid's item, read with a clear error for a damaged file (torchreid's own
        ``read_image`` retries forever)."""
        path, pid, camid, dsetid = self.data[index]
        image = read_image(path)
        if self.transform is not None:
            image = transform_image(self, image)
        return {"img": image, "pid": pid, "camid": camid, "impath": path, "dsetid": dsetid}


def register_datasets() -> None:
    """Registers :class:`ProtectedImageDataset` in torchreid (idempotent)."""
    register_image_dataset(DATASET_NAME, ProtectedImageDataset)


register_datasets()
