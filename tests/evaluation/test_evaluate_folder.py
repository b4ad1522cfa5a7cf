import json

import pytest
import torch

from torchreid_pixelfade.evaluation import SETTINGS, evaluate_folder, results_markdown
from torchreid_pixelfade.io import write_png
from torchreid_pixelfade.protect import Identity, PixelFade
from torchreid_pixelfade.store import ProtectionIdentity, protect_records


def protect(protector, tiny_records, out):
    root, records = tiny_records
    identity = ProtectionIdentity(protector=protector.name, hparams=protector.hparams(),
                                  model="tiny", weights_sha256="", height=64, width=32,
                                  dataset="synthetic")
    protect_records(protector, records, str(out), identity, root, progress=False)


def test_identity_protection_gives_four_equal_settings(tiny_records, trained_model, tmp_path):
    protect(Identity(trained_model), tiny_records, tmp_path)
    results = evaluate_folder(trained_model, str(tmp_path), ranks=(1, 5)).to_dict()
    for setting in SETTINGS:
        assert results["settings"][setting] == results["settings"]["O2O"]
    assert results["privacy"]["ssim"] == pytest.approx(1.0)
    assert results["num_query"] == 12 and results["num_gallery"] == 12


def test_results_schema_and_markdown(tiny_records, random_model, tmp_path):
    # eps 0: no image meets the bound, so the counts of misses show
    protect(PixelFade(random_model, steps=3, seed=0, eps=0.0, extra_steps=0), tiny_records,
            tmp_path)
    result = evaluate_folder(random_model, str(tmp_path))
    results = result.to_dict()
    json.dumps(results)
    assert set(results) == {"settings", "privacy", "protection", "num_query", "num_gallery",
                            "model", "dataset"}
    assert list(results["settings"]) == list(SETTINGS)
    for setting in SETTINGS:
        assert set(results["settings"][setting]) == {"rank1", "rank5", "rank10", "mAP", "mINP"}
        assert all(0 <= v <= 1 for v in results["settings"][setting].values())
    assert set(results["protection"]) == {"name", "steps", "constraint_met_fraction",
                                          "constraint_missed", "steps_used_mean",
                                          "steps_used_max", "seconds_per_image"}
    assert results["protection"]["constraint_missed"] == 24
    assert results["protection"]["constraint_met_fraction"] == 0
    assert "constraint met for 0.0% of images (24 missed" in result.to_markdown()
    assert results["protection"]["steps"] == 3 and results["privacy"]["ssim"] < 0.2
    # the folder's dataset; the model that extracted the features (not the folder's label)
    assert results["dataset"] == "synthetic" and results["model"] == "tiny-random"
    assert "| P2P |" in result.to_markdown() == results_markdown(results)


def test_write_puts_json_and_markdown_side_by_side(tiny_records, random_model, tmp_path):
    protect(Identity(random_model), tiny_records, tmp_path / "p")
    result = evaluate_folder(random_model, str(tmp_path / "p"))
    result.write(str(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(
        json.dumps(result.to_dict()))
    assert (tmp_path / "r.md").read_text() == result.to_markdown()


def test_protected_metrics_come_from_the_stored_files(tiny_records, random_model, tmp_path):
    protect(PixelFade(random_model, steps=3, seed=0), tiny_records, tmp_path)
    before = evaluate_folder(random_model, str(tmp_path)).to_dict()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for key, entry in manifest["images"].items():  # replace every stored query image
        if entry["split"] == "query":
            write_png(tmp_path / key, torch.zeros(3, 64, 32))
    after = evaluate_folder(random_model, str(tmp_path)).to_dict()
    assert after["settings"]["O2O"] == before["settings"]["O2O"]
    assert after["settings"]["P2P"] != before["settings"]["P2P"]
    assert after["privacy"]["ssim"] != before["privacy"]["ssim"]


def test_rerank_and_normalize_change_the_ranking_as_in_torchreid(tiny_records, random_model,
                                                                 tmp_path):
    protect(PixelFade(random_model, steps=3, seed=0), tiny_records, tmp_path)
    plain = evaluate_folder(random_model, str(tmp_path)).settings
    normalised = evaluate_folder(random_model, str(tmp_path), normalize=True).settings
    reranked = evaluate_folder(random_model, str(tmp_path), rerank=True).settings
    assert normalised != plain and reranked != plain
