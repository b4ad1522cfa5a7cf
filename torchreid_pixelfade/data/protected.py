"""A torchreid image dataset that reads a folder written by ``protect`` (PNG + manifest.json).

Registered in torchreid as ``pixelfade_protected``, so any torchreid ``ImageDataManager`` reads
protected images: ``ImageDataManager(root=OUT, sources='pixelfade_protected', ...)``.
"""
from __future__ import annotations

import os

from .._torchreid import tr
from ..io import read_image
from ..store import MANIFEST, load_manifest

DATASET_NAME = "pixelfade_protected"


def _split_items(root: str, manifest: dict, split: str) -> list[tuple[str, int, int]]:
    return [(os.path.join(root, key), entry["pid"], entry["camid"])
            for key, entry in sorted(manifest["images"].items()) if entry["split"] == split]


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
        manifest = load_manifest(self.root)
        if manifest is None:
            raise FileNotFoundError(f"{os.path.join(self.root, MANIFEST)}: no manifest; "
                                    "point root at a folder written by `protect`")
        query = _split_items(self.root, manifest, "query")
        gallery = _split_items(self.root, manifest, "gallery")
        if not query or not gallery:
            raise ValueError(f"{self.root}: needs protected query and gallery images, found "
                             f"{len(query)} and {len(gallery)}")
        train = _relabel(_split_items(self.root, manifest, "train") or gallery)
        super().__init__(train, query, gallery, **kwargs)

    def __getitem__(self, index: int) -> dict:
        """torchreid's item, read with a clear error for a damaged file (torchreid's own
        ``read_image`` retries forever)."""
        path, pid, camid, dsetid = self.data[index]
        image = read_image(path)
        if self.transform is not None:
            image = self._transform_image(self.transform, self.k_tfm, image)
        return {"img": image, "pid": pid, "camid": camid, "impath": path, "dsetid": dsetid}


def register_datasets() -> None:
    """Registers :class:`ProtectedImageDataset` in torchreid (idempotent)."""
    registered = vars(tr.data.datasets).get("__image_datasets", {})
    if registered.get(DATASET_NAME) is not ProtectedImageDataset:
        if DATASET_NAME in registered:
            registered[DATASET_NAME] = ProtectedImageDataset
        else:
            tr.data.register_image_dataset(DATASET_NAME, ProtectedImageDataset)
