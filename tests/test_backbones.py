"""Every torchreid factory model works as the authorised model; every shipped config runs."""
import glob
import json
import os

import pytest
import torch

from torchreid_pixelfade._torchreid import tr
from torchreid_pixelfade.cli import main
from torchreid_pixelfade.models import AuthorizedModel, build_reid_model
from torchreid_pixelfade.protect import PixelFade

# models whose architecture fixes or bounds the input size: run them at a size they take
INPUT_SIZES = {
    "hacnn": (160, 64),  # asserts 160x64
    "inceptionv4": (256, 128),  # too many stride-2 stages for 64x32
    "inceptionresnetv2": (256, 128),
    "mudeep": (256, 128),  # fully connected layer sized for 256x128
}
CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.yaml")))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(vars(tr.models)["__model_factory"]))
def test_one_protection_step_on_every_factory_model(name):
    torch.manual_seed(0)
    height, width = INPUT_SIZES.get(name, (64, 32))
    images = torch.rand(2, 3, height, width)
    result = PixelFade(AuthorizedModel(build_reid_model(name)), steps=1, seed=0).protect(images)
    assert result.images.shape == images.shape
    assert torch.isfinite(result.distance).all()


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=os.path.basename)
def test_shipped_config_runs_test_only_with_pixelfade(config, tiny_market, tmp_path):
    name = model_name(config)
    weights = str(tmp_path / "w.pth")
    torch.save(build_reid_model(name).state_dict(), weights)
    assert main(["run", "--device", "cpu", "--config-file", config, "--root", tiny_market,
                 "data.save_dir", str(tmp_path), "data.height", "64", "data.width", "32",
                 "data.workers", "0", "test.evaluate", "True", "model.load_weights", weights,
                 "pixelfade.enabled", "True", "pixelfade.steps", "1"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["protection"]["steps"] == 1


def model_name(config):
    from torchreid_pixelfade import config as C
    cfg = C.get_default_config()
    C.merge_file(cfg, config)
    return cfg.model.name
