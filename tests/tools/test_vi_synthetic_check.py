"""tools/vi_synthetic_check.py: the targets from evaluations, and a tiny run end to end."""
import json

import pytest
from test_tools import load_tool


@pytest.fixture(scope="module")
def tool():
    return load_tool("vi_synthetic_check")


def evaluation(rank1, m_ap, met=1.0, ssim=0.02):
    """A result dict as ``evaluate_folder(...).to_dict()`` gives it, for the keys used."""
    return {"settings": {key: {"rank1": r, "mAP": m} for key, (r, m) in
                         zip(("O2O:rgb_to_ir", "O2P:rgb_to_ir"), zip(rank1, m_ap))},
            "protection": {"constraint_met_fraction": met, "seconds_per_image": 0.5},
            "privacy": {"ssim": ssim}}


def noise(rank1):
    return {"settings": {"O2P:rgb_to_ir": {"rank1": rank1, "mAP": 0.0}}}


def test_every_target_met(tool):
    summary = tool.summarise(evaluation((0.20, 0.19), (0.3, 0.28)), [noise(0.01), noise(0.03)],
                             chance=0.02)
    assert summary["o2o_times_chance"] == pytest.approx(10)
    assert summary["ratio_rank1"] == pytest.approx(0.95)
    assert summary["noise_rank1_mean"] == pytest.approx(0.02)
    assert all(summary["targets"].values())
    assert "official_ratio_rank1" not in summary  # RegDB: one direction


@pytest.mark.parametrize("rank1, met, ssim, noise_rank1, missed", [
    ((0.05, 0.05), 1.0, 0.02, 0.02, "o2o_at_least_3x_chance"),     # 2.5 x chance
    ((0.20, 0.17), 1.0, 0.02, 0.02, "o2p_at_least_0.9x_o2o"),      # 0.85
    ((0.20, 0.19), 0.94, 0.02, 0.02, "constraint_met_at_least_95%"),
    ((0.20, 0.19), 1.0, 0.11, 0.02, "ssim_at_most_0.1"),
    ((0.20, 0.19), 1.0, 0.02, 0.05, "noise_gallery_at_chance"),    # 2.5 x chance
])
def test_each_target_can_fail_alone(tool, rank1, met, ssim, noise_rank1, missed):
    summary = tool.summarise(evaluation(rank1, (0.3, 0.3), met, ssim), [noise(noise_rank1)],
                             chance=0.02)
    assert [name for name, ok in summary["targets"].items() if not ok] == [missed]


def test_unmeasurable_ratio_is_none_not_a_pass(tool):
    summary = tool.summarise(evaluation((0.0, 0.1), (0.1, 0.1)), [], chance=0.1)
    assert summary["ratio_rank1"] is None
    assert summary["targets"]["o2p_at_least_0.9x_o2o"] is None
    assert summary["targets"]["noise_gallery_at_chance"] is None


def test_regdb_data_tests_as_many_persons_as_asked_and_chance_is_one_over_them(tool, tmp_path):
    args = tool.parse_args(["--output", str(tmp_path), "--datasets", "regdb_trial1",
                            "--test-ids", "4", "--images-per-id", "2"])
    cfg = tool.dataset_config(str(tmp_path / "regdb"), "regdb_trial1", args)
    tool.make_data(cfg.data.root, "regdb_trial1", args)
    lines = (tmp_path / "regdb" / "data" / "RegDB" / "idx" / "test_visible_1.txt").read_text()
    assert len({line.split()[1] for line in lines.splitlines()}) == 4
    assert tool.chance_rank1(cfg) == pytest.approx(1 / 4)  # nothing removed: exactly 1 / N


def test_overrides_anywhere_and_sizes_checked(tool, tmp_path):
    args = tool.parse_args(["pixelfade.steps", "3", "--output", str(tmp_path), "--epochs", "2"])
    assert args.epochs == 2 and args.opts == ["pixelfade.steps", "3"]
    with pytest.raises(SystemExit):
        tool.parse_args(["--output", str(tmp_path), "--test-ids", "3"])  # 3 x chance = 1


@pytest.mark.slow
def test_tiny_sysu_run_writes_the_summary_and_reuses_its_folders(tool, tmp_path):
    argv = ["--output", str(tmp_path), "--datasets", "sysu_mm01", "--test-ids", "8",
            "--train-ids", "8", "--images-per-id", "1", "--epochs", "1", "--noise-seeds", "2",
            "pixelfade.steps", "3", "visible_infrared.batches_per_epoch", "1",
            "visible_infrared.trials", "[0, 1]"]
    assert tool.main(argv + ["--json", str(tmp_path / "all.json")]) == 0
    sysu = json.loads((tmp_path / "sysu_mm01" / "check.json").read_text())
    assert json.loads((tmp_path / "all.json").read_text())["datasets"]["sysu_mm01"] == sysu
    # identities without an IR camera make chance a little above 1 / 8, never below
    assert 1 / 8 <= sysu["chance"] < 1.5 / 8 and len(sysu["noise_rank1"]) == 2
    assert sysu["eps"] > 0 and 0 <= sysu["constraint_met"] <= 1
    assert sysu["official_ratio_map"] is not None  # SYSU: both directions evaluated
    assert set(sysu["targets"]) == {"o2o_at_least_3x_chance", "o2p_at_least_0.9x_o2o",
                                    "constraint_met_at_least_95%", "ssim_at_most_0.1",
                                    "noise_gallery_at_chance"}
    for folder in ("pixelfade", "noise-0", "noise-1"):
        assert (tmp_path / "sysu_mm01" / folder / "manifest.json").is_file()
    assert tool.main(argv) == 0  # everything stored: evaluated again, the same numbers
    again = json.loads((tmp_path / "sysu_mm01" / "check.json").read_text())
    assert again["o2p_rank1"] == sysu["o2p_rank1"] and again["train_seconds"] < 1
    # other options would evaluate a model and images that are not theirs: refused
    with pytest.raises(SystemExit, match="epochs"):
        tool.main(argv + ["--epochs", "2"])
