import importlib.util
import json
import os

import pytest

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "tools")


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOOLS, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_speed_writes_ratio(tmp_path):
    tool = load_tool("benchmark_speed")
    out = tmp_path / "speed.json"
    assert tool.main(["--backbones", "osnet_x0_25", "--batch-size", "2", "--height", "64",
                      "--width", "32", "--steps", "3", "--repeats", "1", "--device", "cpu",
                      "--json", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    assert result["backbone"] == "osnet_x0_25" and result["steps"] == 3
    # protect = T x (forward + backward) + small extras: the ratio cannot be far below 1
    assert result["ratio_to_T_forward_backward"] > 0.5


def test_calibrate_eps_reports_scales(tiny_market, tmp_path):
    import torch
    from torchreid_pixelfade.models import build_reid_model
    torch.save(build_reid_model("osnet_x0_25").state_dict(), tmp_path / "w.pth")
    config = os.path.join(TOOLS, "..", "configs", "osnet_x0_25_128x64.yaml")
    out = tmp_path / "eps.json"
    assert load_tool("calibrate_eps").main([
        "--weights", str(tmp_path / "w.pth"), "--json", str(out), "--device", "cpu",
        "--config-file", config, "--root", tiny_market, "data.height", "64",
        "data.width", "32"]) == 0
    report = json.loads(out.read_text())
    assert report["feature_dim"] == 512 and report["flip_median"] >= 0
    assert report["num_images"] == 12
    # the medians are those the calibration of `protect` takes on the same images
    from torchreid_pixelfade import config as C
    from torchreid_pixelfade.io import load_images
    from torchreid_pixelfade.protect.calibration import flip_distances
    from torchreid_pixelfade.workflows import build_authorized_model, dataset_records

    cfg = C.get_default_config()
    C.merge_file(cfg, config)
    C.merge_opts(cfg, ["data.root", tiny_market, "data.height", 64, "data.width", 32])
    model = build_authorized_model(cfg, str(tmp_path / "w.pth"), "cpu")
    images = load_images([r.path for r in dataset_records(cfg, ("query",))[1]], 64, 32)
    for key, relative in (("flip_median", False), ("flip_ratio_median", True)):
        expected = float(flip_distances(model, images, relative=relative).quantile(0.5))
        assert report[key] == pytest.approx(expected, rel=1e-5) and expected > 0


def test_sweep_pixelfade_reports_each_variant(tiny_market, tmp_path):
    import torch
    from torchreid_pixelfade.models import build_reid_model
    torch.save(build_reid_model("osnet_x0_25").state_dict(), tmp_path / "w.pth")
    config = os.path.join(TOOLS, "..", "configs", "osnet_x0_25_128x64.yaml")
    out = tmp_path / "sweep.json"
    assert load_tool("sweep_pixelfade").main([
        "--weights", str(tmp_path / "w.pth"), "--json", str(out), "--device", "cpu",
        "--num-images", "3", "--variant", "steps=2", "--variant", "steps=3,beta=0.02",
        "--config-file", config, "--root", tiny_market, "data.height", "64",
        "data.width", "32"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["hparams"]["steps"] for r in rows] == [2, 3] and rows[1]["hparams"]["beta"] == 0.02
    assert all(0 <= r["constraint_met_fraction"] <= 1 for r in rows)


@pytest.mark.slow
def test_benchmark_backbones_trains_protects_and_reports(tiny_market, tmp_path):
    out = tmp_path / "bench"
    assert load_tool("benchmark_backbones").main([
        "--backbones", "osnet_x0_25", "--protectors", "identity", "pixelfade",
        "--output", str(out), "--epochs", "1", "--max-ids", "3", "--device", "cpu",
        "--root", tiny_market, "data.height", "64", "data.width", "32", "data.workers", "0",
        "train.batch_size", "8", "pixelfade.steps", "2", "test.ranks", "[1]"]) == 0
    rows = json.loads((out / "backbones.json").read_text())
    assert [r["protector"] for r in rows] == ["identity", "pixelfade"]
    assert rows[0]["feature_dim"] == 512 and rows[0]["P2P"] == rows[0]["O2O"]
    manifest = json.loads((out / "osnet_x0_25" / "identity" / "manifest.json").read_text())
    assert len(manifest["images"]) == 12  # every image of the first 3 test identities
    table = (out / "backbones.md").read_text()
    assert (out / "backbones.png").exists() and "| osnet_x0_25 |" in table
    met = rows[1]["constraint_met_fraction"]
    assert rows[0]["constraint_met_fraction"] is None and 0 <= met <= 1
    assert table.rstrip().endswith(f"| {100 * met:.0f}% |")
