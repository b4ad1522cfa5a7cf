import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from torchreid_pixelfade._torchreid import tr
from torchreid_pixelfade.engine import enable_pixelfade
from torchreid_pixelfade.evaluation import SETTINGS
from torchreid_pixelfade.io import write_png
from torchreid_pixelfade.protect import Identity

from conftest import TinyReID

NAME = "market1501"


@pytest.fixture
def datamanager(tiny_market):
    return tr.data.ImageDataManager(root=tiny_market, sources=NAME, height=64, width=32,
                                    workers=0, use_gpu=False, batch_size_test=8,
                                    batch_size_train=4)


def make_engine(datamanager, kind="softmax"):
    torch.manual_seed(0)
    model = TinyReID(num_classes=datamanager.num_train_pids)
    optimizer = torch.optim.Adam(model.parameters())
    if kind == "softmax":
        return tr.engine.ImageSoftmaxEngine(datamanager, model, optimizer, use_gpu=False)
    return tr.engine.ImageTripletEngine(datamanager, model, optimizer, use_gpu=False)


def loaders(datamanager):
    return datamanager.test_loader[NAME]["query"], datamanager.test_loader[NAME]["gallery"]


@pytest.mark.parametrize("kind", ["softmax", "triplet"])
def test_o2o_reproduces_torchreid_exactly(datamanager, tmp_path, kind):
    engine = make_engine(datamanager, kind)
    engine.set_model_mode("eval")
    rank1, mAP = tr.engine.Engine._evaluate(engine, NAME, *loaders(datamanager), ranks=[1, 5],
                                             normalize_feature=True)
    enable_pixelfade(engine, protector="identity", cache_dir=str(tmp_path))
    engine.test(ranks=[1, 5], normalize_feature=True)
    o2o = engine.pixelfade_results[NAME]["settings"]["O2O"]
    assert o2o["rank1"] == pytest.approx(float(rank1), abs=1e-12)
    assert o2o["mAP"] == pytest.approx(float(mAP), abs=1e-12)


def test_identity_gives_four_equal_settings(datamanager, tmp_path):
    engine = enable_pixelfade(make_engine(datamanager), protector="identity",
                              cache_dir=str(tmp_path))
    engine.test(ranks=[1, 5, 10, 20, 50])  # ranks beyond the 12-image gallery do not crash
    settings = engine.pixelfade_results[NAME]["settings"]
    assert all(settings[s] == settings["O2O"] for s in SETTINGS)


def test_pixelfade_p2p_comes_from_stored_images_and_cache_is_reused(datamanager, tmp_path):
    engine = enable_pixelfade(make_engine(datamanager), protector="pixelfade",
                              protector_kwargs={"steps": 3, "seed": 0}, cache_dir=str(tmp_path))
    returned = engine.test(ranks=[1, 5])
    first = engine.pixelfade_results[NAME]
    assert all(p.requires_grad for p in engine.model.parameters())  # still trainable
    assert returned == first["settings"]["P2P"]["rank1"]
    folder = first["protected_dir"]
    manifest = json.loads(open(os.path.join(folder, "manifest.json")).read())
    assert len(manifest["images"]) == 24
    # replace the stored images (and their recorded hashes, so resume accepts them as stored):
    # the hook must not protect again, and P2P must follow the files on disk
    for key, entry in manifest["images"].items():
        data = write_png(os.path.join(folder, key), torch.zeros(3, 64, 32))
        entry["png_sha256"], entry["png_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (Path(folder) / "manifest.json").write_text(json.dumps(manifest))
    mtime = os.stat(os.path.join(folder, "manifest.json")).st_mtime_ns
    engine.test(ranks=[1, 5])
    second = engine.pixelfade_results[NAME]
    assert second["protected_dir"] == folder  # same weights and settings: cache hit
    assert os.stat(os.path.join(folder, "manifest.json")).st_mtime_ns == mtime
    assert second["settings"]["O2O"] == first["settings"]["O2O"]
    assert second["settings"]["P2P"] != first["settings"]["P2P"]


def test_damaged_cache_files_are_protected_again(datamanager, tmp_path):
    engine = enable_pixelfade(make_engine(datamanager), protector="pixelfade",
                              protector_kwargs={"steps": 3, "seed": 0}, cache_dir=str(tmp_path))
    engine.test(ranks=[1])
    first = engine.pixelfade_results[NAME]
    key = next(iter(json.loads(open(os.path.join(first["protected_dir"],
                                                     "manifest.json")).read())["images"]))
    path = os.path.join(first["protected_dir"], key)
    zeros = write_png(path, torch.zeros(3, 64, 32))  # damaged behind the manifest's back
    engine.test(ranks=[1])
    redone = open(path, "rb").read()
    entry = json.loads(open(os.path.join(first["protected_dir"],
                                         "manifest.json")).read())["images"][key]
    assert redone != zeros and entry["png_sha256"] == hashlib.sha256(redone).hexdigest()
    assert engine.pixelfade_results[NAME]["settings"]["O2O"] == first["settings"]["O2O"]


def test_changed_weights_protect_again(datamanager, tmp_path):
    engine = enable_pixelfade(make_engine(datamanager), protector="identity",
                              cache_dir=str(tmp_path))
    engine.test(ranks=[1])
    first = engine.pixelfade_results[NAME]["protected_dir"]
    with torch.no_grad():
        engine.model.features[0].weight.add_(0.1)
    engine.test(ranks=[1])
    assert engine.pixelfade_results[NAME]["protected_dir"] != first


def test_only_gallery_protected(datamanager, tmp_path):
    engine = enable_pixelfade(make_engine(datamanager), protector=Identity(), protect=["gallery"],
                              cache_dir=str(tmp_path), report_setting="O2P")
    engine.test(ranks=[1])
    results = engine.pixelfade_results[NAME]
    assert results["settings"]["P2O"] == results["settings"]["O2O"]
    splits = {e["split"] for e in json.loads(open(os.path.join(
        results["protected_dir"], "manifest.json")).read())["images"].values()}
    assert splits == {"gallery"}


def test_bad_options_raise():
    from torchreid_pixelfade.engine import ProtectionOptions
    with pytest.raises(ValueError, match="report_setting"):
        ProtectionOptions(report_setting="X2Y")
    with pytest.raises(ValueError, match="protect"):
        ProtectionOptions(protect=["train"])
