"""The text-to-image scenario through the commands: data.type text_image."""
import json
import os

import pytest
import torch

from torchreid_pixelfade.cli import main
from torchreid_pixelfade.data.synthetic import SyntheticCuhkPedesConfig, make_synthetic_cuhk_pedes

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "text_image",
                      "osnet_x0_25_text_cuhk_pedes_128x64.yaml")
TINY = ["data.height", "64", "data.width", "32", "model.name", "vit_tiny",
        "text_image.context_length", "32"]


@pytest.fixture(scope="module")
def tiny_pedes(tmp_path_factory):
    root = tmp_path_factory.mktemp("pedes")
    make_synthetic_cuhk_pedes(str(root), SyntheticCuhkPedesConfig(
        num_train_ids=3, num_val_ids=1, num_test_ids=3, images_per_id=2, height=64, width=32))
    return str(root)


def test_train_protect_evaluate_the_gallery(tiny_pedes, tmp_path):
    common = ["--device", "cpu", "--config-file", CONFIG, "--root", tiny_pedes, *TINY]
    save = tmp_path / "log"
    assert main(["train", *common, "data.save_dir", str(save), "train.max_epoch", "1",
                 "train.warmup_epochs", "0", "train.batch_size", "4"]) == 0
    weights = str(save / "model.pth")
    assert torch.load(weights, weights_only=True)["classifier.weight"].shape[0] == 3
    assert main(["protect", *common, "--weights", weights, "--output", str(tmp_path / "p"),
                 "--no-progress", "pixelfade.protector", "identity"]) == 0
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert len(manifest["images"]) == 6  # the test gallery: 3 ids x 2 images, nothing else
    assert manifest["identity"]["model"] == "vit_tiny/image"
    assert main(["evaluate", *common, "--weights", weights, "--protected", str(tmp_path / "p"),
                 "--json", str(tmp_path / "r.json")]) == 0
    results = json.loads((tmp_path / "r.json").read_text())
    assert set(results["settings"]) == {"T2O", "T2P"}
    assert results["settings"]["T2O"] == results["settings"]["T2P"]  # identity: lossless PNG
    assert results["num_query"] == 12  # every caption of the test images (2 per image)


def test_attacker_images_are_the_training_images(tiny_pedes, tmp_path):
    weights = str(tmp_path / "w.pth")
    from torchreid_pixelfade.engines.text_image.model import build_t2i_model
    from torchreid_pixelfade.engines.text_image.tokenizers import WordTokenizer
    from torchreid_pixelfade.engines.text_image.datasets import read_cuhk_pedes

    vocab = WordTokenizer.build(r.caption for r in read_cuhk_pedes(tiny_pedes).train)
    torch.save({"model": build_t2i_model("vit_tiny", 3, vocab.vocab_size, context_length=32,
                                         temperature=0.02).state_dict()}, weights)
    assert main(["protect", "--device", "cpu", "--config-file", CONFIG, "--root", tiny_pedes,
                 *TINY, "--weights", weights, "--output", str(tmp_path / "t"), "--splits",
                 "train", "--no-progress", "pixelfade.protector", "blur"]) == 0
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert len(manifest["images"]) == 6 and {i["split"] for i in manifest["images"].values()} \
        == {"train"}
