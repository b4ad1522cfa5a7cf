import os

import pytest

from torchreid_pixelfade._torchreid import tr
from torchreid_pixelfade.data.protected import DATASET_NAME, ProtectedImageDataset, register_datasets
from torchreid_pixelfade.protect import Identity
from torchreid_pixelfade.store import ProtectionIdentity, protect_records

IDENTITY = ProtectionIdentity(protector="identity", hparams={}, model="tiny", weights_sha256="",
                              height=64, width=32)


@pytest.fixture(scope="module")
def protected_dir(tiny_records, tmp_path_factory):
    root, records = tiny_records
    out = tmp_path_factory.mktemp("protected")
    protect_records(Identity(), records, str(out), IDENTITY, root, progress=False)
    return str(out)


def test_protected_folder_loads_through_a_torchreid_datamanager(protected_dir, tiny_records):
    register_datasets()
    register_datasets()  # idempotent
    manager = tr.data.ImageDataManager(root=protected_dir, sources=DATASET_NAME, height=64,
                                       width=32, workers=0, use_gpu=False, batch_size_test=5,
                                       batch_size_train=4, transforms=None)
    query = manager.test_loader[DATASET_NAME]["query"]
    gallery = manager.test_loader[DATASET_NAME]["gallery"]
    records = tiny_records[1]
    assert len(query.dataset) == sum(r.split == "query" for r in records)
    assert len(gallery.dataset) == sum(r.split == "gallery" for r in records)
    batch = next(iter(query))
    assert batch["img"].shape[1:] == (3, 64, 32)
    assert all(path.endswith(".png") for path in batch["impath"])


def test_labels_come_from_the_manifest(protected_dir, tiny_records):
    dataset = ProtectedImageDataset(root=protected_dir, verbose=False)
    expected = sorted((r.pid, r.camid) for r in tiny_records[1] if r.split == "query")
    assert sorted((pid, camid) for _, pid, camid, _ in dataset.query) == expected


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        ProtectedImageDataset(root=str(tmp_path))


def test_damaged_protected_file_is_a_clear_error_not_a_hang(protected_dir, tmp_path):
    import shutil
    from torchreid_pixelfade.io import ImageReadError
    copy = tmp_path / "copy"
    shutil.copytree(protected_dir, copy)
    dataset = ProtectedImageDataset(root=str(copy), mode="query", verbose=False)
    path = dataset.data[0][0]
    open(path, "wb").write(b"broken")
    with pytest.raises(ImageReadError, match=os.path.basename(path)):
        dataset[0]
