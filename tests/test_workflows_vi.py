"""The visible-infrared scenario through the commands: data.type visible_infrared."""
import json
import os

import pytest
import torch

from torchreid_pixelfade.cli import main
from torchreid_pixelfade.data.synthetic import SyntheticSysuConfig, make_synthetic_sysu_mm01
from torchreid_pixelfade.engines.visible_infrared.model import build_vi_model

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "visible_infrared")
CONFIG = os.path.join(CONFIGS, "osnet_x0_25_sysu_mm01_128x64.yaml")


@pytest.fixture(scope="module")
def tiny_sysu(tmp_path_factory):
    root = tmp_path_factory.mktemp("sysu")
    make_synthetic_sysu_mm01(str(root), SyntheticSysuConfig(
        num_train_ids=2, num_val_ids=1, num_test_ids=4, images_per_id_per_camera=1,
        height=64, width=32))
    return str(root)


def test_protect_and_evaluate_infrared_gallery(tiny_sysu, tmp_path):
    torch.manual_seed(0)
    weights = str(tmp_path / "w.pth")
    torch.save({"net": build_vi_model("osnet_x0_25", num_classes=3).state_dict()}, weights)
    common = ["--device", "cpu", "--config-file", CONFIG, "--root", tiny_sysu, "--weights",
              weights, "data.height", "64", "data.width", "32", "visible_infrared.trials", "[0, 1]"]
    assert main(["protect", *common, "--output", str(tmp_path / "p"), "--no-progress",
                 "pixelfade.protector", "identity"]) == 0
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["images"] and all(
        "cam3" in key or "cam6" in key for key in manifest["images"])  # IR only
    assert manifest["identity"]["model"] == "BackboneTwoStream/thermal/bn"
    assert main(["evaluate", *common, "--protected", str(tmp_path / "p"), "--json",
                 str(tmp_path / "r.json")]) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["settings"]["O2P:rgb_to_ir"] == results["settings"]["O2O:rgb_to_ir"]
    assert len(results["trials"]["O2P:rgb_to_ir"]) == 2
    assert "| O2P:rgb_to_ir |" in (tmp_path / "r.md").read_text()


def test_unknown_scenario_target_is_named(tiny_sysu, tmp_path):
    assert main(["protect", "--device", "cpu", "--config-file", CONFIG, "--root", tiny_sysu,
                 "--weights", "w.pth", "--output", str(tmp_path / "p"), "-t", "market1501"]) == 2


def test_train_then_protect_with_the_trained_weights(tiny_sysu, tmp_path):
    save = tmp_path / "log"
    common = ["--device", "cpu", "--config-file", CONFIG, "--root", tiny_sysu,
              "data.height", "64", "data.width", "32"]
    assert main(["train", *common, "data.save_dir", str(save), "train.max_epoch", "1",
                 "train.batch_size", "4", "sampler.num_instances", "2",
                 "visible_infrared.batches_per_epoch", "2", "visible_infrared.trials", "[0]"]) == 0
    weights = save / "model.pth"
    state = torch.load(weights, weights_only=True)
    assert state["classifier.weight"].shape[0] == 3  # 2 train + 1 val identity (AGW trains on both)
    assert (save / "config.yaml").is_file()
    assert main(["protect", *common, "--weights", str(weights), "--output", str(tmp_path / "p"),
                 "--no-progress", "pixelfade.protector", "blur"]) == 0


def test_batch_size_must_split_into_identities(tiny_sysu, tmp_path):
    assert main(["train", "--device", "cpu", "--config-file", CONFIG, "--root", tiny_sysu,
                 "data.save_dir", str(tmp_path), "train.batch_size", "6",
                 "sampler.num_instances", "4"]) == 2


def test_protect_calibrates_eps_on_the_images_it_protects(tiny_sysu, tmp_path):
    from torchreid_pixelfade import config as C
    from torchreid_pixelfade.io import load_images
    from torchreid_pixelfade.protect.calibration import flip_calibrated_eps
    from torchreid_pixelfade.workflows.visible_infrared import infrared_records, vi_models

    torch.manual_seed(0)
    weights = str(tmp_path / "w.pth")
    torch.save({"net": build_vi_model("osnet_x0_25", num_classes=3).state_dict()}, weights)
    opts = ["data.height", 64, "data.width", 32, "pixelfade.steps", 2,
            "pixelfade.eps_flip_multiple", 0.5]
    common = ["--device", "cpu", "--config-file", CONFIG, "--root", tiny_sysu, "--weights",
              weights, "--no-progress", *map(str, opts)]
    stored = {}
    for mode in ("relative", "absolute"):
        out = tmp_path / mode
        assert main(["protect", *common, "--output", str(out), "pixelfade.eps_mode", mode]) == 0
        stored[mode] = json.loads((out / "manifest.json").read_text())["identity"]["hparams"]
    cfg = C.get_default_config()
    C.merge_file(cfg, CONFIG)
    C.merge_opts(cfg, ["data.root", tiny_sysu, *opts])
    root, records = infrared_records(cfg)
    model = vi_models(cfg, weights, "cpu")[1]
    images = load_images([os.path.join(root, r.path) for r in records], 64, 32)
    for mode in ("relative", "absolute"):  # in the units of the configured eps_mode
        expected = flip_calibrated_eps(model, images, 0.5, eps_mode=mode)
        assert stored[mode]["eps"] == expected != cfg.pixelfade.eps
    assert stored["relative"]["eps"] != stored["absolute"]["eps"]

