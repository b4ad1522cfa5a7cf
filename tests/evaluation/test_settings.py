import numpy as np
import pytest
import torch

from torchreid_pixelfade.evaluation import (IMAGE_SETTINGS, O2P, SETTINGS, Setting,
                                            evaluate_settings, setting)


def test_names_and_parsing_round_trip():
    assert SETTINGS == ("O2O", "P2P", "O2P", "P2O")
    assert all(setting(s.name) == s for s in IMAGE_SETTINGS)
    assert setting("O2P") == O2P == Setting("original", "protected")
    assert Setting("text", "protected").name == "T2P"
    with pytest.raises(ValueError, match="Unknown setting"):
        setting("X2Y")
    with pytest.raises(ValueError, match="Unknown form"):
        Setting("recovered", "original")


def test_each_setting_ranks_its_own_forms():
    torch.manual_seed(0)
    pids = np.repeat(np.arange(4), 2)
    camids = np.tile([0, 1], 4)
    original = torch.randn(4, 16).repeat_interleave(2, 0) + 0.01 * torch.randn(8, 16)
    query = {"original": original, "protected": torch.randn(8, 16)}
    gallery = {"original": original, "protected": torch.randn(8, 16)}
    results = evaluate_settings(query, gallery, (pids, camids), (pids, camids))
    assert list(results) == list(SETTINGS)
    # each query's other-camera image is its neighbour; random protected features are not
    assert results["O2O"]["rank1"] == 1.0 and results["P2P"]["mAP"] < 1.0
    only = evaluate_settings(query, gallery, (pids, camids), (pids, camids), settings=["O2O"])
    assert only == {"O2O": results["O2O"]}
