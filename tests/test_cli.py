"""End-to-end checks of the command line (marked slow; they still run in CI)."""
import json
import os

import pytest
import torch

from torchreid_pixelfade import config as C
from torchreid_pixelfade.cli import build_parser, main, parse_args
from torchreid_pixelfade.workflows import dataset_records
from torchreid_pixelfade.models import build_reid_model
from torchreid_pixelfade.store import ProtectedFolder

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "osnet_x0_25_128x64.yaml")
KEYS = {"settings", "privacy", "protection", "num_query", "num_gallery", "model", "dataset"}


@pytest.mark.slow
def test_demo_quick_writes_its_files(tmp_path):
    assert main(["demo", "--quick", "--output", str(tmp_path), "--device", "cpu"]) == 0
    results = json.loads((tmp_path / "results-quick.json").read_text())
    assert set(results) >= KEYS and set(results["settings"]) == {"O2O", "P2P", "O2P", "P2O"}
    assert (tmp_path / "results-quick.md").exists() and (tmp_path / "grid-quick.png").exists()
    # a second run reuses data, weights and protected images
    manifest = tmp_path / "protected-quick" / "manifest.json"
    mtime = os.stat(manifest).st_mtime_ns
    assert main(["demo", "--quick", "--output", str(tmp_path), "--device", "cpu"]) == 0
    again = json.loads((tmp_path / "results-quick.json").read_text())
    assert again["settings"] == results["settings"] and os.stat(manifest).st_mtime_ns == mtime
    # the quick run's outputs never stand in for the full demo's
    assert not (tmp_path / "train").exists() and not (tmp_path / "protected").exists()


@pytest.mark.slow
def test_visible_infrared_demo_quick_writes_its_files(tmp_path):
    assert main(["demo", "--scenario", "visible_infrared", "--quick", "--output", str(tmp_path),
                 "--device", "cpu"]) == 0
    for dataset, settings in (("sysu_mm01", {"O2O:rgb_to_ir", "O2P:rgb_to_ir", "O2O:ir_to_rgb",
                                             "P2O:ir_to_rgb"}),
                              ("regdb", {"O2O:rgb_to_ir", "O2P:rgb_to_ir"})):
        folder = tmp_path / dataset
        results = json.loads((folder / "results-quick.json").read_text())
        assert set(results) >= KEYS and set(results["settings"]) == settings
        noise = json.loads((folder / "results-noise-quick.json").read_text())
        assert noise["protection"]["name"] == "noise" and noise["privacy"]["ssim"] < 0.2
        assert noise["settings"]["O2O:rgb_to_ir"] == results["settings"]["O2O:rgb_to_ir"]
        assert (folder / "figure-quick.png").exists()
        manifest = json.loads((folder / "protected-quick" / "manifest.json").read_text())
        rgb = [k for k in manifest["images"] if "Visible" in k or "/cam1/" in k or "cam2" in k]
        assert manifest["images"] and not rgb  # RGB images are never protected
    assert "## regdb" in (tmp_path / "results-quick.md").read_text()


@pytest.mark.slow
def test_text_image_demo_quick_writes_its_files(tmp_path):
    assert main(["demo", "--scenario", "text_image", "--quick", "--output", str(tmp_path),
                 "--device", "cpu"]) == 0
    for dataset in ("cuhk_pedes", "icfg_pedes", "rstpreid"):
        folder = tmp_path / dataset
        results = json.loads((folder / "results-quick.json").read_text())
        assert set(results) >= KEYS and set(results["settings"]) == {"T2O", "T2P"}
        shuffled = json.loads((folder / "results-shuffled-quick.json").read_text())
        assert shuffled["t2i_protocol"]["shuffle_seed"] == 0
        assert json.loads((folder / "results-noise-quick.json").read_text())[
            "protection"]["name"] == "noise"
        assert (folder / "figure-quick.png").exists()
        manifest = json.loads((folder / "protected-quick" / "manifest.json").read_text())
        assert {image["split"] for image in manifest["images"].values()} == {"test"}  # gallery
    assert (tmp_path / "train-quick" / "model.pth").exists()
    assert "## rstpreid" in (tmp_path / "results-quick.md").read_text()


@pytest.mark.slow
def test_train_protect_evaluate_on_synthetic(tiny_market, tmp_path):
    save_dir = tmp_path / "train"
    assert main(["train", "--device", "cpu", "--config-file", CONFIG, "--root", tiny_market,
                 "data.save_dir", str(save_dir), "data.height", "64", "data.width", "32",
                 "train.max_epoch", "1", "train.batch_size", "8", "test.ranks", "[1]",
                 "data.workers", "0"]) == 0
    weights = str(save_dir / "model.pth")
    assert os.path.exists(weights) and (save_dir / "config.yaml").exists()
    common = ["--device", "cpu", "--config-file", CONFIG, "--root", tiny_market,
              "--weights", weights]
    overrides = ["data.height", "64", "data.width", "32", "pixelfade.steps", "6",
                 "pixelfade.seed", "0"]
    assert main(["protect", *common, "--output", str(tmp_path / "p"), "--no-progress",
                 *overrides]) == 0
    assert main(["evaluate", *common, "--protected", str(tmp_path / "p"), "--json",
                 str(tmp_path / "r.json"), *overrides]) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert set(results) >= KEYS and results["protection"]["steps"] == 6
    entries = ProtectedFolder.open(str(tmp_path / "p")).images.values()
    assert results["protection"]["constraint_missed"] == sum(
        e.constraint_met is False for e in entries)
    assert 1 <= results["protection"]["steps_used_mean"] <= 6 + 40  # T + extra_steps
    # a bound no image meets, refused: exit 2, every image still stored and recorded
    assert main(["protect", *common, "--output", str(tmp_path / "refused"), "--no-progress",
                 *overrides, "pixelfade.eps", "0.0", "pixelfade.extra_steps", "0",
                 "pixelfade.on_missed_constraint", "fail"]) == 2
    refused = ProtectedFolder.open(str(tmp_path / "refused"))
    assert len(refused) == len(entries) and refused.summary()["constraint_met_fraction"] == 0
    with pytest.raises(ValueError, match="on_missed_constraint must be one of"):
        main(["--log-level", "DEBUG", "protect", *common, "--output", str(tmp_path / "x"),
              *overrides, "pixelfade.on_missed_constraint", "skip"])


@pytest.mark.slow
def test_protect_and_evaluate_real_cuhk03_crops(shared_data, tmp_path):
    """Small-scale run on the real CUHK03 crops: random osnet_x0_25, 64x32, 2 steps."""
    torch.manual_seed(0)
    weights = str(tmp_path / "w.pth")
    torch.save(build_reid_model("osnet_x0_25").state_dict(), weights)
    args = ["--device", "cpu", "--config-file", CONFIG, "--root", shared_data,
            "--weights", weights]
    overrides = ["data.height", "64", "data.width", "32", "pixelfade.steps", "2"]
    cfg = C.config_from_args(build_parser().parse_args(["protect", *args, "--output", "x",
                                                        *overrides]))
    splits = [r.split for r in dataset_records(cfg)[1]]
    assert splits.count("query") == 200 and splits.count("gallery") == 779
    assert main(["protect", *args, "--output", str(tmp_path / "p"), "--no-progress",
                 "--max-images", "40", *overrides]) == 0
    assert main(["evaluate", *args, "--protected", str(tmp_path / "p"), "--json",
                 str(tmp_path / "r.json"), *overrides]) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["num_query"] == 40 and results["num_gallery"] == 40
    assert results["privacy"]["ssim"] < 0.3


@pytest.mark.slow
def test_main_test_only_with_pixelfade_writes_four_settings(tiny_market, tmp_path):
    torch.manual_seed(0)
    weights = str(tmp_path / "w.pth")
    torch.save(build_reid_model("osnet_x0_25").state_dict(), weights)
    argv = ["run", "--device", "cpu", "--config-file", CONFIG, "--root", tiny_market,
            "data.save_dir", str(tmp_path / "log"), "data.height", "64", "data.width", "32",
            "data.workers", "0", "pixelfade.enabled", "True", "test.evaluate", "True",
            "model.load_weights", weights, "pixelfade.steps", "4", "pixelfade.seed", "0"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "log" / "results.json").read_text())
    assert set(results) >= KEYS and results["protection"]["steps"] == 4
    assert "| P2P |" in (tmp_path / "log" / "results.md").read_text()


@pytest.mark.slow
def test_main_with_pixelfade_transform_name(tiny_market, tmp_path):
    """'pixelfade' in data.transforms installs the per-image transform on query and gallery."""
    weights = str(tmp_path / "w.pth")
    torch.save(build_reid_model("osnet_x0_25").state_dict(), weights)
    from torchreid_pixelfade.workflows import run
    args = build_parser().parse_args([
        "run", "--config-file", CONFIG, "--root", tiny_market, "--transforms", "random_flip",
        "pixelfade", "--", "data.save_dir", str(tmp_path / "log"), "data.height", "64",
        "data.width", "32", "data.workers", "0", "test.evaluate", "True",
        "model.load_weights", weights, "pixelfade.steps", "2"])
    engine = run(C.config_from_args(args), "cpu")
    query = engine.datamanager.test_loader["market1501"]["query"].dataset
    assert "PixelFadeTransform" in repr(query.transform)


def test_options_may_follow_the_overrides():
    args = parse_args(build_parser(), ["protect", "--config-file", "c.yaml", "pixelfade.eps",
                                       "0.05", "--weights", "w", "--output", "o",
                                       "pixelfade.seed", "-1"])
    assert (args.weights, args.output) == ("w", "o")
    assert args.opts == ["pixelfade.eps", "0.05", "pixelfade.seed", "-1"]
    args = parse_args(build_parser(), ["report", "--weights", "w", "--output", "o", "--rows",
                                       "blur", "avih", "--", "pixelfade.seed", "0"])
    assert args.rows == ["blur", "avih"] and args.opts == ["pixelfade.seed", "0"]
    with pytest.raises(SystemExit):
        parse_args(build_parser(), ["protect", "--weights", "w", "--output", "o", "--nope"])
    with pytest.raises(SystemExit):
        parse_args(build_parser(), ["protect", "--weights", "w", "--output", "o",
                                    "--max-images", "-1"])


def test_expected_failures_are_one_line_errors(tmp_path, caplog):
    argv = ["protect", "--device", "cpu", "--config-file", CONFIG, "--root",
            str(tmp_path / "missing"), "--weights", "w.pth", "--output", str(tmp_path / "o")]
    assert main(argv) == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "FileNotFoundError: data root" in errors[0].getMessage()
    assert errors[0].exc_info is None
    with pytest.raises(FileNotFoundError):
        main(["--log-level", "DEBUG", *argv])


def test_config_files_must_be_yaml(tmp_path):
    (tmp_path / "evil.py").write_text("raise SystemExit('executed')\n")
    with pytest.raises(ValueError, match="must be YAML"):
        C.merge_file(C.get_default_config(), str(tmp_path / "evil.py"))


def test_overrides_swallowed_by_list_options_are_taken_back():
    args = parse_args(build_parser(), ["protect", "--weights", "w", "--output", "o", "-s",
                                       "market1501", "data.height", "64", "pixelfade.steps", "3"])
    assert args.sources == ["market1501"]
    assert args.opts == ["data.height", "64", "pixelfade.steps", "3"]
    args = parse_args(build_parser(), ["protect", "--weights", "w", "--output", "o",
                                       "--transforms", "random_flip", "data.height", "64",
                                       "--log-level", "DEBUG"])
    assert args.transforms == ["random_flip"] and args.opts == ["data.height", "64"]
    assert args.log_level == "DEBUG"  # also accepted after the sub-command
