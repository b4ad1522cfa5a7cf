"""Tests for the scale tools: benchmark_ranking, benchmark_attack_memory and scale_check, run
in-process on tiny data (their subprocesses are replaced by direct calls)."""
import argparse
import json
import os
import subprocess

import numpy as np
import pytest
import torch

from test_tools import load_tool
from torchreid_pixelfade.metrics import evaluate_rank
from torchreid_pixelfade.store import ProtectedFolder

TINY_RANKING = ["--num-query", "30", "--num-gallery", "120", "--num-ids", "10", "--num-cams",
                "3", "--threads", "1", "--repeats", "1"]


@pytest.fixture(scope="module")
def ranking():
    return load_tool("benchmark_ranking")


# ----------------------------------------------------------------------------- benchmark_ranking


def test_make_problem_has_market_like_labels(ranking):
    distmat, q_pids, g_pids, q_camids, g_camids = ranking.make_problem(30, 120, 10, 3, dim=16)
    assert distmat.shape == (30, 120) and distmat.dtype == np.float32
    assert distmat.min() >= 0
    assert set(q_pids) <= set(g_pids) and set(g_pids) == set(range(10))
    assert set(q_camids) | set(g_camids) <= {0, 1, 2}
    # features are identity centres plus noise: same-id pairs are closer on average
    same = q_pids[:, None] == g_pids[None, :]
    assert distmat[same].mean() < distmat[~same].mean()


def test_peak_rss_sees_torch_and_numpy_allocations(ranking):
    with ranking.PeakRSS() as quiet:
        pass
    with ranking.PeakRSS() as peak:
        block = torch.ones(64 * 2 ** 20 // 4)  # 64 MiB, touched
        del block
    assert peak.extra_mb > 48 and quiet.extra_mb < 16
    assert peak.method in ("VmHWM after clear_refs", "ru_maxrss delta")


def test_worker_reports_time_memory_and_the_metrics(ranking, capsys):
    assert ranking.main(["--worker", "current@chunk=7"] + TINY_RANKING) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    problem = ranking.make_problem(30, 120, 10, 3)
    expected = evaluate_rank(*problem)
    assert row["variant"] == "current@chunk=7" and row["seconds"] > 0
    assert row["mAP"] == expected.mAP and row["cmc"] == expected.cmc.tolist()
    assert row["distmat_mb"] == pytest.approx(30 * 120 * 4 / 2 ** 20)


def test_git_variant_loads_the_committed_rank_module(ranking):
    try:
        module = ranking.load_rank_module("git:HEAD")
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("no git checkout")
    problem = ranking.make_problem(30, 120, 10, 3)
    committed, current = module.evaluate_rank(*problem), evaluate_rank(*problem)
    np.testing.assert_array_equal(committed.cmc, current.cmc)
    assert committed.mAP == pytest.approx(current.mAP, abs=1e-12)
    with pytest.raises(ValueError, match="variant"):
        ranking.load_rank_module("newest")


def test_main_writes_json_and_flags_identical_results(ranking, tmp_path, monkeypatch):
    def in_process(variant, argv):
        args, _ = ranking.parse_args(argv)
        return ranking.run_variant(variant, args)

    monkeypatch.setattr(ranking, "spawn", in_process)
    out = tmp_path / "ranking.json"
    assert ranking.main(["--variants", "current", "current@chunk=4", "--json", str(out)]
                        + TINY_RANKING) == 0
    report = json.loads(out.read_text())
    assert report["shape"] == [30, 120] and report["threads"] == 1
    assert [r["variant"] for r in report["results"]] == ["current", "current@chunk=4"]
    assert all(r["identical_to_first"] for r in report["results"])


# ----------------------------------------------------------------------------- attack memory


@pytest.fixture(scope="module")
def attack_folders(tmp_path_factory):
    tool = load_tool("benchmark_attack_memory")
    return tool, tool.build_folders(str(tmp_path_factory.mktemp("attack-memory")), 8, 64, 32)


def test_attack_memory_folders_hold_n_and_4n_pairs(attack_folders):
    _, folders = attack_folders
    assert sorted(folders) == [8, 32]
    for count, folder in folders.items():
        opened = ProtectedFolder.open(folder)
        assert len(opened) == count and opened.identity.protector == "blur"
        assert opened.image_size == (64, 32)


@pytest.mark.parametrize("mode", ["stream", "memory", "victims", "victims-at-once"])
def test_attack_memory_runs_each_mode(attack_folders, mode):
    tool, folders = attack_folders
    args, _ = tool.parse_args(["--worker", folders[8], "--unet-width", "4", "--batch-size", "4",
                               "--threads", "1"])
    row = tool.train_once(folders[8], mode, args)
    assert row["mode"] == mode and row["pairs"] == 8
    assert row["seconds"] > 0 and row["peak_extra_mb"] >= 0


def test_attack_memory_growth_and_json(attack_folders, tmp_path, monkeypatch):
    tool, folders = attack_folders
    rows = [{"mode": "stream", "pairs": 8, "peak_extra_mb": 100.0},
            {"mode": "stream", "pairs": 32, "peak_extra_mb": 101.0},
            {"mode": "memory", "pairs": 8, "peak_extra_mb": 100.0},
            {"mode": "memory", "pairs": 32, "peak_extra_mb": 124.0}]
    growth = tool.growth(rows)
    assert growth["stream"]["growth_mb"] == 1.0
    assert growth["memory"]["kib_per_pair"] == pytest.approx(1024.0)
    monkeypatch.setattr(tool, "build_folders", lambda *args: folders)
    monkeypatch.setattr(tool, "spawn", lambda folder, mode, argv: dict(
        mode=mode, pairs=len(ProtectedFolder.open(folder)), peak_extra_mb=1.0, seconds=0.1))
    out = tmp_path / "memory.json"
    with pytest.raises(SystemExit):  # one optimiser step only: Adam's state not yet allocated
        tool.main(["--work-dir", str(tmp_path), "--pairs", "8", "--batch-size", "8"])
    assert tool.main(["--work-dir", str(tmp_path), "--pairs", "8", "--batch-size", "4",
                      "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(r["mode"], r["pairs"]) for r in report["results"]] == [
        (mode, count) for mode in tool.MODES for count in (8, 32)]
    # Market-1501's 12,936 training pairs as float tensors at 64x32
    assert report["market_train_as_float_pairs_gb"] == pytest.approx(
        12_936 * 2 * 3 * 64 * 32 * 4 / 2 ** 30)


# ----------------------------------------------------------------------------- scale_check


@pytest.fixture(scope="module")
def scale():
    return load_tool("scale_check")


def test_synthetic_images_are_deterministic_and_identity_coloured(scale, tmp_path):
    first, again = scale.synthetic_image(3, 0), scale.synthetic_image(3, 0)
    assert first.shape == (64, 32, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    same_id = np.abs(first.astype(int) - scale.synthetic_image(4, 0)).mean()
    other_id = np.abs(first.astype(int) - scale.synthetic_image(4, 1)).mean()
    assert same_id < other_id
    records = scale.write_dataset(str(tmp_path), 40)
    assert len(records) == 40 and all(os.path.isfile(r[0]) for r in records)
    assert [r[4] for r in records].count("query") == 4  # 2 of each identity's 20 images
    mtime = os.stat(records[0][0]).st_mtime_ns
    scale.write_dataset(str(tmp_path), 40)  # files already there are kept
    assert os.stat(records[0][0]).st_mtime_ns == mtime


def test_per_window_gives_seconds_per_thousand(scale):
    # 2 ms per image throughout: 2 s per 1,000 in every whole window
    samples = [(0.002 * n, n, 100.0) for n in range(0, 2001, 100)]
    rows = scale.per_window(samples, 500)
    assert [r["from"] for r in rows] == [0, 500, 1000, 1500]
    assert all(r["seconds_per_1000"] == pytest.approx(2.0) for r in rows)
    assert scale.per_window(samples[:1], 500) == []


def test_follower_ignores_the_part_of_the_interrupted_run(scale, tmp_path):
    part = tmp_path / scale.PART
    part.write_text('{"images": {"old": 1}}\n' * 3)
    follower = scale.Follower(str(tmp_path), batch_size=4, done_before=12)
    assert follower.images() == 12  # still the old run's lines
    part.write_text('{"images": {"new": 1}}\n')
    assert follower.images() == 16
    part.unlink()  # merged away at the end of the run
    assert follower.images() == 16


def test_worker_resumes_and_times_the_manifest_work(scale, tmp_path):
    records = scale.write_dataset(str(tmp_path / "data"), 40)
    for count in (20, 40):  # a first run stopped half way, then the whole list
        (tmp_path / "records.json").write_text(json.dumps(records[:count]))
        scale.protect_worker(str(tmp_path), "tiny", steps=2, batch_size=8, threads=1)
    folder = ProtectedFolder.open(tmp_path / "protected")
    assert len(folder) == 40 and not list(tmp_path.glob("protected/manifest.part-*"))
    summary = scale.manifest_summary(str(tmp_path))
    assert summary["calls"]["part_append"] == 3  # only the 20 new images: batches 8, 8, 4
    assert summary["calls"]["resume_check"] == 1 and summary["calls"]["merge"] == 1
    assert all(seconds >= 0 for seconds in summary["total_seconds"].values())
    args = argparse.Namespace(model="tiny", steps=2, threads=1)
    evaluation = scale.evaluate(str(tmp_path), args)
    assert (evaluation["num_query"], evaluation["num_gallery"]) == (4, 36)
    for metrics in evaluation["metrics"].values():
        assert all(0 <= value <= 1 for value in metrics.values())


def test_scale_check_refuses_a_work_dir_inside_the_repository(scale, tmp_path):
    with pytest.raises(SystemExit):
        scale.parse_args(["--work-dir", os.path.join(scale.REPO, "scale-run")])
    assert scale.parse_args(["--work-dir", str(tmp_path)]).work_dir == str(tmp_path)
    with pytest.raises(SystemExit):
        scale.parse_args(["--work-dir", str(tmp_path), "--kill-fraction", "1"])
