"""tools/benchmark_speed.py in process on a tiny setting: the plain keys, the official loop's
floor and each fast path's speed-up and quality."""
import json

import pytest

from test_tools import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("benchmark_speed")


def test_reports_fast_paths_with_speed_and_quality(tool, tmp_path):
    out = tmp_path / "speed.json"
    assert tool.main(["--backbones", "osnet_x0_25", "--batch-size", "2", "--height", "64",
                      "--width", "32", "--steps", "2", "--repeats", "1", "--device", "cpu",
                      "--options", "auto", "channels_last", "bf16", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["options"] == ["auto", "channels_last", "bf16"] and report["repeats"] == 1
    result = report["results"][0]
    for key in ("seconds_per_image", "forward_backward_seconds", "protect_seconds",
                "ratio_to_T_forward_backward", "ratio_to_passes_forward_backward",
                "images_per_second", "passes_mean"):
        assert result[key] > 0, key
    official = result["official"]
    assert official["images_per_second"] == pytest.approx(
        2 / (2 * official["forward_backward_seconds"]))
    assert result["official_speedup"]["per_image"] > 0
    paths = result["fast_paths"]
    assert paths["channels_last"] == {"same_as": "auto", "options": paths["auto"]["options"]}
    assert paths["auto"]["options"] == {"channels_last": True, "precision": "fp32",
                                        "compile": False}
    for name in ("auto", "bf16"):
        entry = paths[name]
        assert entry["speedup"] > 0 and entry["forward_backward_speedup"] > 0
        assert len(entry["speedup_runs"]) == 1 and entry["official_speedup"]["per_pass"] > 0
        quality = entry["quality"]
        assert 0 <= quality["constraint_met_fp32"] <= 1
        assert -1 <= quality["ssim_mean"] <= 1 and quality["passes_mean"] >= 1
    assert paths["auto"]["quality"]["gradient_cosine_min"] > 0.9999  # channels_last: equal
    assert paths["bf16"]["quality"]["gradient_cosine_min"] < 1


def test_forward_backward_only_skips_protect(tool, tmp_path):
    out = tmp_path / "fb.json"
    assert tool.main(["--backbones", "osnet_x0_25", "--batch-size", "2", "--height", "64",
                      "--width", "32", "--repeats", "2", "--device", "cpu", "--options",
                      "channels_last", "--forward-backward-only", "--json", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    assert "protect_seconds" not in result and len(result["forward_backward_runs"]) == 2
    entry = result["fast_paths"]["channels_last"]
    assert "speedup" not in entry and entry["forward_backward_speedup"] > 0
    assert entry["quality"]["gradient_cosine_min"] > 0.9999


def test_option_names(tool):
    assert tool.option_arguments("channels_last+bf16", "cpu") == {
        "channels_last": True, "precision": "bf16", "compile": False}
    assert tool.option_arguments("auto", "cuda")["precision"] == "tf32"
    with pytest.raises(ValueError, match="unknown option 'fp8'"):
        tool.option_arguments("fp8", "cpu")
    assert tool.default_options("cuda")[-1] == "tf32"
