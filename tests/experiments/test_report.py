import json
import os

import pytest
import torch

from torchreid_pixelfade import config as C
from torchreid_pixelfade.models import build_reid_model
from torchreid_pixelfade.experiments.report import AttackConfig, parse_row, run_report

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs",
                      "osnet_x0_25_128x64.yaml")


def test_parse_row():
    assert parse_row("blur") == ("blur", ["pixelfade.protector", "blur"])
    assert parse_row("pixelfade:noise_weight=0.6,target='zeros'")[1] == [
        "pixelfade.protector", "pixelfade", "pixelfade.noise_weight", 0.6,
        "pixelfade.target", "zeros"]
    # other protectors' options live in their own node; the seed is one run option
    assert parse_row("avih:step_size=0.02,seed=3")[1] == [
        "pixelfade.protector", "avih", "pixelfade.avih.step_size", 0.02, "pixelfade.seed", 3]
    # a row that gives eps is not calibrated
    assert parse_row("pixelfade:eps=0.1")[1] == [
        "pixelfade.protector", "pixelfade", "pixelfade.eps", 0.1,
        "pixelfade.eps_flip_multiple", 0.0]


@pytest.mark.parametrize("bad_row, error", [("pixelfade.seed", ValueError),
                                             ("pixelfade:no_such_option=1", KeyError)])
def test_report_checks_every_row_before_protecting(bad_row, error, tmp_path):
    cfg = C.get_default_config()
    C.merge_file(cfg, CONFIG)
    cfg.freeze()
    with pytest.raises(error, match="pixelfade.seed|no_such_option"):
        run_report(cfg, "never-read.pth", str(tmp_path / "report"), ["identity", bad_row])
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_report_end_to_end_on_synthetic(tiny_market, tmp_path):
    torch.manual_seed(0)
    weights = str(tmp_path / "w.pth")
    torch.save(build_reid_model("osnet_x0_25").state_dict(), weights)
    cfg = C.get_default_config()
    C.merge_file(cfg, CONFIG)
    C.merge_opts(cfg, ["data.root", tiny_market, "data.height", "64", "data.width", "32",
                       "pixelfade.steps", "3", "pixelfade.seed", "0"])
    cfg.freeze()
    rows = ["identity", "mosaic", "avih", "pixelfade", "pixelfade:noise_weight=0.5"]
    out = tmp_path / "report"
    attack = AttackConfig(train_images=8, epochs=1, width=4, batch_size=4)
    results = run_report(cfg, weights, str(out), rows, attack)
    assert [r["row"] for r in results] == rows
    table = (out / "report.md").read_text()
    assert "| pixelfade:noise_weight=0.5 |" in table and "recovered SSIM" in table
    assert "own original: Rank-1" in table and "Floor: the attacker's mean original" in table
    assert (out / "figure.png").exists()
    saved = json.loads((out / "report.json").read_text())
    assert saved[0]["settings"]["O2O"] == saved[0]["settings"]["P2P"]  # identity row
    assert saved[0]["attack_prior"] == saved[-1]["attack_prior"]  # same attacker images
    assert saved[0]["privacy"]["ssim"] == pytest.approx(1.0)
    manifest = json.loads((out / "pixelfade" / "train" / "manifest.json").read_text())
    assert len(manifest["images"]) == 8  # the attacker's subset of the train split
    # a second run reuses everything: no image is protected again
    mtime = os.stat(out / "pixelfade" / "test" / "manifest.json").st_mtime_ns
    run_report(cfg, weights, str(out), rows, attack)
    assert os.stat(out / "pixelfade" / "test" / "manifest.json").st_mtime_ns == mtime


VI_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "visible_infrared",
                         "osnet_x0_25_sysu_mm01_128x64.yaml")


@pytest.mark.slow
def test_report_on_protected_infrared_images(tmp_path):
    """Table 6 shape: the VI settings as columns, the IR training images as the attacker's."""
    from torchreid_pixelfade.data.synthetic import SyntheticSysuConfig, make_synthetic_sysu_mm01
    from torchreid_pixelfade.engines.visible_infrared.model import build_vi_model

    root = tmp_path / "data"
    make_synthetic_sysu_mm01(str(root), SyntheticSysuConfig(
        num_train_ids=2, num_val_ids=1, num_test_ids=3, images_per_id_per_camera=1,
        height=64, width=32))
    torch.manual_seed(0)
    weights = str(tmp_path / "w.pth")
    torch.save(build_vi_model("osnet_x0_25", num_classes=3).state_dict(), weights)
    cfg = C.get_default_config()
    C.merge_file(cfg, VI_CONFIG)
    C.merge_opts(cfg, ["data.root", str(root), "data.height", "64", "data.width", "32",
                       "pixelfade.steps", "2", "visible_infrared.trials", "[0]"])
    cfg.freeze()
    out = tmp_path / "report"
    results = run_report(cfg, weights, str(out), None, AttackConfig(
        train_images=4, epochs=1, width=4, batch_size=2))
    assert [r["row"] for r in results] == ["identity", "avih", "pixelfade"]
    table = (out / "report.md").read_text()
    assert "O2P:rgb_to_ir R1" in table and "P2O:ir_to_rgb R1" in table
    manifest = json.loads((out / "identity" / "train" / "manifest.json").read_text())
    assert len(manifest["images"]) == 4 and all(
        "cam3" in k or "cam6" in k for k in manifest["images"])  # IR training images only
    assert results[0]["settings"]["O2P:rgb_to_ir"] == results[0]["settings"]["O2O:rgb_to_ir"]
    # the config calibrates eps on the test images; the attacker's images get the same eps
    test, train = (json.loads((out / "pixelfade" / split / "manifest.json").read_text())[
        "identity"] for split in ("test", "train"))
    assert test["eps_calibration"]["flip_multiple"] == 1.0 and "eps_calibration" not in train
    assert train["hparams"]["eps"] == test["hparams"]["eps"] != cfg.pixelfade.eps
