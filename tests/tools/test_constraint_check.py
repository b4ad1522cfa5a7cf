"""tools/constraint_check.py on the tiny synthetic Market tree with a tiny osnet."""
import json
import os

import pytest

from test_tools import TOOLS, load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("constraint_check")


def test_reports_each_variant_from_the_stored_images(tool, tiny_market, tmp_path):
    import torch
    from torchreid_pixelfade.models import build_reid_model
    torch.manual_seed(0)
    torch.save(build_reid_model("osnet_x0_25").state_dict(), tmp_path / "w.pth")
    config = os.path.join(TOOLS, "..", "configs", "osnet_x0_25_128x64.yaml")
    out = tmp_path / "check.json"
    common = ["--weights", str(tmp_path / "w.pth"), "--output", str(tmp_path / "protected"),
              "--json", str(out), "--device", "cpu", "--max-ids", "2",
              "--timing-images", "4", "--config-file", config,
              "--root", tiny_market, "data.height", "64", "data.width", "32",
              "data.workers", "0"]
    fixed_variant = "steps=3,step_control='fixed'"
    assert tool.main(common + ["--variant", fixed_variant, "--variant", "steps=3"]) == 0
    report = json.loads(out.read_text())
    fixed, adaptive = report["rows"]
    assert fixed["hparams"]["step_control"] == "fixed"
    assert adaptive["hparams"]["step_control"] == "adaptive"
    for row in report["rows"]:
        # 2 identities x 2 cameras x 2 images, query and gallery
        assert row["num_images"] == 8 and os.path.isdir(row["folder"])
        assert 0 <= row["constraint_met_fraction"] <= 1
        assert len(row["missed"]) == round(8 * (1 - row["constraint_met_fraction"]))
        assert 0 <= row["o2o_rank1"] <= 1 and 0 <= row["ssim"] <= 1
    assert fixed["steps_mean"] == fixed["steps_max"] == 3
    assert 1 <= adaptive["steps_mean"] <= adaptive["steps_max"] <= 3 + 20
    assert fixed["cost_vs_first"] == 1 and adaptive["timed_seconds_per_image"] > 0
    assert adaptive["cost_vs_first"] == pytest.approx(
        adaptive["timed_seconds_per_image"] / fixed["timed_seconds_per_image"])
    # a rerun reuses the folder: nothing is protected again, the stored images give the same
    assert tool.main(common + ["--variant", fixed_variant]) == 0
    again = json.loads(out.read_text())["rows"][0]
    assert again["steps_mean"] == fixed["steps_mean"]  # from the manifest
    assert again["constraint_met_fraction"] == fixed["constraint_met_fraction"]
    assert again["p2p_rank1"] == fixed["p2p_rank1"]


def test_folder_names_are_safe(tool):
    assert tool.folder_name("") == "config"
    assert tool.folder_name("beta=0.02,step_control='fixed'") == "beta=0.02_step_control=_fixed_"
