"""The VI scenario's protection (IR files only) and evaluation from the stored PNGs."""
from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from torchreid_pixelfade.data.synthetic.sysu_regdb import (
    SyntheticRegDBConfig,
    SyntheticSysuConfig,
    make_synthetic_regdb,
    make_synthetic_sysu_mm01,
)
from torchreid_pixelfade.engines.visible_infrared.datasets import (
    INFRARED,
    read_regdb,
    read_sysu_mm01,
)
from torchreid_pixelfade.engines.visible_infrared.model import build_vi_model
from torchreid_pixelfade.engines.visible_infrared.task import (
    VIEvaluationResult,
    combine_trials,
    evaluate_vi,
    infrared_identity,
    infrared_model,
    infrared_test_records,
    protect_infrared,
    visible_model,
    visible_test_records,
)
from torchreid_pixelfade.evaluation import EvaluationResult
from torchreid_pixelfade.io import load_images
from torchreid_pixelfade.protect import build_protector
from torchreid_pixelfade.protect.calibration import flip_calibrated_eps
from torchreid_pixelfade.store import ProtectedFolder

HEIGHT, WIDTH = 64, 32
SYSU = SyntheticSysuConfig(num_train_ids=4, num_val_ids=1, num_test_ids=6,
                           images_per_id_per_camera=2, missing_camera_prob=0.2, height=HEIGHT,
                           width=WIDTH, seed=1)
REGDB = SyntheticRegDBConfig(num_ids=6, images_per_id=2, height=HEIGHT, width=WIDTH, seed=1)
SYSU_KEYS = ["O2O:rgb_to_ir", "O2P:rgb_to_ir", "O2O:ir_to_rgb", "P2O:ir_to_rgb"]
TRIALS = (0, 1)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("vi_task")
    make_synthetic_sysu_mm01(root, SYSU)
    make_synthetic_regdb(root, REGDB)
    return root


@pytest.fixture(scope="module")
def sysu(root):
    return read_sysu_mm01(root).test


@pytest.fixture(scope="module")
def models():
    """``(visible, infrared)`` authorised models of one random tiny two-stream net."""
    torch.manual_seed(0)
    net = build_vi_model("osnet_x0_25", num_classes=5).eval()
    return visible_model(net), infrared_model(net)


def protect(models, test_set, out_dir, protector="identity", records=None, **hparams):
    infrared = models[1]
    protector = build_protector(protector, infrared, **hparams)
    identity = infrared_identity(protector, infrared, HEIGHT, WIDTH, "synthetic")
    records = infrared_test_records(test_set) if records is None else records
    return protect_infrared(protector, records, str(out_dir), identity, test_set.dataset_dir,
                            progress=False)


@pytest.fixture(scope="module")
def identity_folder(models, sysu, tmp_path_factory):
    return protect(models, sysu, tmp_path_factory.mktemp("identity") / "out")


def digests(folder: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["sysu", "regdb"])
def test_protection_touches_only_infrared_files(root, models, tmp_path, name):
    test_set = read_sysu_mm01(root).test if name == "sysu" else read_regdb(root, trial=2)
    records = infrared_test_records(test_set)
    assert records and all(r.modality == INFRARED for r in records)
    before = digests(root)
    folder = protect(models, test_set, tmp_path / "out", "blur")
    assert digests(root) == before  # RGB (and IR) source bytes unchanged, nothing added there
    pngs = {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")}
    assert pngs == {r.output_key for r in records} == set(folder.images)
    assert all(key.split("/")[0] in ({"cam3", "cam6"} if name == "sysu" else {"Thermal"})
               for key in pngs)
    with Image.open(tmp_path / "out" / min(pngs)) as image:
        assert image.mode == "RGB" and image.size == (WIDTH, HEIGHT)
    assert folder.identity.model.endswith("/thermal/bn")
    with pytest.raises(ValueError, match="not infrared"):
        protect(models, test_set, tmp_path / "rgb", records=visible_test_records(test_set))
    assert not (tmp_path / "rgb").exists()


def test_identity_model_must_be_the_unnormalised_thermal_path(models):
    visible, infrared = models
    protector = build_protector("identity", visible)
    with pytest.raises(ValueError, match="thermal_encoder"):
        infrared_identity(protector, visible, HEIGHT, WIDTH, "x")
    infrared.model.normalize = True
    try:
        with pytest.raises(ValueError, match="un-normalised"):
            infrared_identity(protector, infrared, HEIGHT, WIDTH, "x")
    finally:
        infrared.model.normalize = False


def test_identity_protection_gives_o2p_equal_to_o2o(models, sysu, identity_folder, tmp_path):
    result = evaluate_vi(*models, identity_folder, sysu, trials=TRIALS)
    assert isinstance(result, EvaluationResult) and list(result.settings) == SYSU_KEYS
    for protected, original in (("O2P:rgb_to_ir", "O2O:rgb_to_ir"),
                                ("P2O:ir_to_rgb", "O2O:ir_to_rgb")):
        assert result.settings[protected] == result.settings[original]
        assert result.trials[protected] == result.trials[original]
    assert set(result.settings["O2O:rgb_to_ir"]) == {"rank1", "rank5", "rank10", "rank20",
                                                     "mAP", "mINP"}
    assert [row["trial"] for row in result.trials["O2O:ir_to_rgb"]] == list(TRIALS)
    assert result.privacy["ssim"] == pytest.approx(1.0)
    assert result.num_gallery == len(identity_folder) == len(infrared_test_records(sysu))
    assert result.vi_protocol == {"dataset": "sysu", "directions": ["rgb_to_ir", "ir_to_rgb"],
                                  "trials": list(TRIALS), "mode": "all", "shot": "single"}
    result.write(str(tmp_path / "results.json"))
    data = json.loads((tmp_path / "results.json").read_text())
    assert {"settings", "privacy", "protection", "trials", "num_query", "model"} <= set(data)
    assert VIEvaluationResult.from_dict(data) == result
    markdown = (tmp_path / "results.md").read_text()
    assert "| O2P:rgb_to_ir |" in markdown and "Per trial, P2O:ir_to_rgb" in markdown


def test_pixelfade_runs_and_records_the_constraint(models, sysu, tmp_path):
    infrared = models[1]
    images = load_images([r.path for r in infrared_test_records(sysu)], HEIGHT, WIDTH)
    eps = flip_calibrated_eps(infrared, images)
    assert eps > 0
    folder = protect(models, sysu, tmp_path / "pf", "pixelfade", steps=4, warmup_steps=1,
                     no_replace_last=1, num_masks=2, eps=eps, eps_mode="relative", seed=0)
    assert folder.identity.hparams["eps_mode"] == "relative"
    assert all(e.constraint_met is not None and e.distance is not None
               for e in folder.entries())
    result = evaluate_vi(*models, folder, sysu, directions=["ir_to_rgb"], trials=(0,))
    assert list(result.settings) == ["O2O:ir_to_rgb", "P2O:ir_to_rgb"]
    assert 0.0 <= result.protection["constraint_met_fraction"] <= 1.0
    assert result.protection["name"] == "pixelfade" and result.protection["steps"] == 4
    assert result.privacy["ssim"] < 0.9
    assert all(0.0 <= v <= 1.0 for row in result.settings.values() for v in row.values())


def test_regdb_trials_evaluate_and_combine(root, models, tmp_path):
    results = []
    for trial in (1, 2):
        data = read_regdb(root, trial=trial)
        folder = protect(models, data, tmp_path / f"trial{trial}")
        result = evaluate_vi(*models, folder, data)
        assert list(result.settings) == ["O2O:rgb_to_ir", "O2P:rgb_to_ir"]
        assert result.settings["O2P:rgb_to_ir"] == result.settings["O2O:rgb_to_ir"]
        results.append(result)
    with pytest.raises(ValueError, match="trial 2 only"):
        evaluate_vi(*models, folder, data, trials=(3,))
    combined = combine_trials(results)
    assert [row["trial"] for row in combined.trials["O2O:rgb_to_ir"]] == [1, 2]
    assert combined.vi_protocol["trials"] == [1, 2]
    assert combined.settings["O2O:rgb_to_ir"]["mAP"] == pytest.approx(
        np.mean([r.settings["O2O:rgb_to_ir"]["mAP"] for r in results]))
    assert combined.num_gallery == sum(r.num_gallery for r in results)


def test_evaluation_refuses_a_folder_missing_ir_images(models, sysu, tmp_path):
    records = infrared_test_records(sysu)
    folder = protect(models, sysu, tmp_path / "part", records=records[:3])
    with pytest.raises(ValueError, match="not stored"):
        evaluate_vi(*models, ProtectedFolder.open(folder.path), sysu, trials=(0,))
