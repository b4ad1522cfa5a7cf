"""The shared sides of cross-modal evaluation: features of files, of a protected folder's stored
PNGs and their originals, per-image privacy, and the flip-calibrated eps."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from torchreid_pixelfade.evaluation.sides import (
    Side,
    original_side,
    path_features,
    privacy_means,
    protected_side,
    record_labels,
    stored_entries,
)
from torchreid_pixelfade.io import load_images
from torchreid_pixelfade.metrics import privacy_metrics
from torchreid_pixelfade.models import AuthorizedModel
from torchreid_pixelfade.protect import build_protector
from torchreid_pixelfade.store import ImageRecord, protect_records, protection_identity

HEIGHT, WIDTH = 64, 32


def tiny_model(seed: int = 0) -> AuthorizedModel:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((2, 1)),
                        nn.Flatten())
    return AuthorizedModel(net, name="tiny")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[pathlib.Path, list[ImageRecord]]:
    """Six random images of three persons (two cameras), stored 72x36 (resized when read)."""
    root = tmp_path_factory.mktemp("sides") / "data"
    rng = np.random.default_rng(0)
    records = []
    for k in range(6):
        relpath = f"cam{k % 2}/{k // 2:04d}_{k}.jpg"
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (72, 36, 3), dtype=np.uint8)).save(root / relpath)
        records.append(ImageRecord(str(root / relpath), relpath, k // 2, k % 2, "gallery"))
    return root, records


@pytest.fixture(scope="module")
def model() -> AuthorizedModel:
    return tiny_model()


def protect(model, records, root, out_dir, name="identity", **hparams):
    protector = build_protector(name, model, **hparams)
    identity = protection_identity(protector, model, model.model, HEIGHT, WIDTH, "synthetic")
    return protect_records(protector, records, str(out_dir), identity, str(root), progress=False)


def test_path_features_are_normalised_and_independent_of_batching(source, model):
    _, records = source
    paths = [r.path for r in records]
    features = path_features(model, paths, HEIGHT, WIDTH, batch_size=4)
    direct = F.normalize(model(load_images(paths, HEIGHT, WIDTH)), dim=1)
    assert features.shape == (6, 16)
    torch.testing.assert_close(features, direct)
    torch.testing.assert_close(features, path_features(model, paths, HEIGHT, WIDTH, 1))
    torch.testing.assert_close(features.norm(dim=1), torch.ones(6))
    with pytest.raises(ValueError, match="no images"):
        path_features(model, [], HEIGHT, WIDTH)


def test_original_side_keeps_record_order_and_labels(source, model):
    _, records = source
    side = original_side(model, records[::-1], HEIGHT, WIDTH)
    assert isinstance(side, Side) and list(side.features) == ["original"]
    assert side.pids.tolist() == [2, 2, 1, 1, 0, 0] and side.camids.tolist() == [1, 0] * 3
    assert side.pids.dtype == np.int64 and side.privacy == {}
    torch.testing.assert_close(side.features["original"][0],
                               path_features(model, [records[-1].path], HEIGHT, WIDTH)[0])
    pids, camids = record_labels(records)
    assert pids.tolist() == [0, 0, 1, 1, 2, 2] and camids.tolist() == [0, 1] * 3


def test_identity_round_trip_gives_equal_forms(source, model, tmp_path):
    root, records = source
    folder = protect(model, records, root, tmp_path / "out")
    side = protected_side(model, folder, records, batch_size=4)
    # 8-bit originals -> identity -> lossless 8-bit PNG: the same pixels, the same features
    assert torch.equal(side.features["protected"], side.features["original"])
    np.testing.assert_allclose(side.privacy["ssim"], 1.0, atol=1e-6)
    assert {k: v.shape for k, v in side.privacy.items()} == {k: (6,) for k in
                                                             ("ssim", "psnr", "ad")}


def test_protected_side_reads_the_stored_pngs(source, model, tmp_path):
    root, records = source
    folder = protect(model, records, root, tmp_path / "out", "blur")
    order = records[::-1]
    entries = stored_entries(folder, order)
    assert [e.source for e in entries] == [r.relpath for r in order]
    # tamper with one stored file after protection: the side must see the file, not a cache
    tampered = folder.protected_path(entries[1])
    Image.new("RGB", (WIDTH, HEIGHT), (255, 0, 0)).save(tampered)
    side = protected_side(model, folder, order, batch_size=4)
    stored = [folder.protected_path(e) for e in entries]
    originals = [folder.original_path(e) for e in entries]
    torch.testing.assert_close(side.features["protected"],
                               path_features(model, stored, HEIGHT, WIDTH))
    torch.testing.assert_close(side.features["original"],
                               path_features(model, [r.path for r in order], HEIGHT, WIDTH))
    expected = privacy_metrics(load_images(stored, HEIGHT, WIDTH),
                               load_images(originals, HEIGHT, WIDTH))
    for name, values in expected.items():
        np.testing.assert_allclose(side.privacy[name], values, rtol=1e-6)
    assert side.privacy["ssim"].max() < 0.99  # blurred noise differs from its original
    assert side.pids.tolist() == [r.pid for r in order]


def test_stored_entries_refuses_missing_and_foreign_images(source, model, tmp_path):
    root, records = source
    folder = protect(model, records[:2], root, tmp_path / "out")
    with pytest.raises(ValueError, match=r"4 of 6 gallery images are not stored \(first: "):
        stored_entries(folder, records, "gallery images")
    with pytest.raises(ValueError, match="no test images"):
        protected_side(model, folder, [])
    first = records[0]
    foreign = ImageRecord(first.path, first.relpath[:-4] + ".bmp", 0, 0, "gallery")
    assert foreign.output_key == first.output_key
    with pytest.raises(ValueError, match="another source image"):
        stored_entries(folder, [foreign])


def test_privacy_means():
    per_image = {"ssim": np.array([0.1, 0.3]), "psnr": np.array([10.0, 20.0]),
                 "ad": np.array([1.0, 2.0, 9.0])}
    assert privacy_means(per_image) == pytest.approx(
        {"ssim": 0.2, "psnr": 15.0, "ad": 4.0, "ad_median": 2.0})
    with pytest.raises(ValueError, match="ad"):
        privacy_means({"ssim": [1.0], "psnr": [1.0], "ad": []})
