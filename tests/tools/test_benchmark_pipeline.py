"""tools/benchmark_pipeline.py on the tiny synthetic Market tree."""
import json

from test_tools import load_tool


def test_reports_the_time_beyond_the_stand_in_protector(tiny_market, tmp_path):
    tool = load_tool("benchmark_pipeline")
    out = tmp_path / "pipeline.json"
    assert tool.main(["--root", tiny_market, "--busy", "0", "0.2", "--batch-size", "8",
                      "--height", "64", "--width", "32", "--json", str(out)]) == 0
    idle, busy = json.loads(out.read_text())["rows"]
    assert idle["images"] == busy["images"] == 24 and busy["batches"] == 3
    # the stand-in's time is in the wall time, and what remains is the same work both times
    assert busy["seconds"] >= 3 * 0.2
    assert busy["seconds_beyond_busy"] == busy["seconds"] - 3 * 0.2
    assert idle["seconds_beyond_busy"] == idle["seconds"] > 0
