import numpy as np
import pytest
import torch

from torchreid_pixelfade.store import file_sha256
from torchreid_pixelfade.models import (AuthorizedModel, build_reid_model, eval_mode,
                                        load_weights)

from conftest import TinyReID


def test_plain_state_dict_round_trip(tmp_path):
    source, target = TinyReID(), TinyReID()
    torch.save(source.state_dict(), tmp_path / "w.pth")
    load_weights(target, tmp_path / "w.pth")
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)


def test_torchreid_checkpoint_with_numpy_scalars_loads(tmp_path):
    source, target = TinyReID(), TinyReID()
    checkpoint = {"state_dict": {"module." + k: v for k, v in source.state_dict().items()},
                  "epoch": 3, "rank1": np.float32(0.5), "optimizer": None}
    torch.save(checkpoint, tmp_path / "model.pth.tar-3")
    load_weights(target, tmp_path / "model.pth.tar-3")
    assert torch.equal(source.features[0].weight, target.features[0].weight)


def test_classifier_of_another_size_is_skipped(tmp_path):
    torch.save(TinyReID(num_classes=5).state_dict(), tmp_path / "w.pth")
    model = load_weights(TinyReID(num_classes=9), tmp_path / "w.pth")
    assert model.classifier.out_features == 9


def test_no_matching_layer_is_an_error(tmp_path):
    torch.save({"other.weight": torch.zeros(3)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="w.pth: no layer matches"):
        load_weights(TinyReID(), tmp_path / "w.pth")


def test_not_a_checkpoint_is_an_error(tmp_path):
    (tmp_path / "w.pth").write_text("hello")
    with pytest.raises(ValueError, match="cannot read weights"):
        load_weights(TinyReID(), tmp_path / "w.pth")
    with pytest.raises(FileNotFoundError):
        load_weights(TinyReID(), tmp_path / "none.pth")


def test_authorized_model_normalises_freezes_and_restores_mode():
    net = TinyReID()
    net.train()
    model = AuthorizedModel(net)
    x = torch.rand(2, 3, 16, 8)
    features = model(x)
    assert features.shape == (2, 32) and net.training
    assert not any(p.requires_grad for p in net.parameters())
    with eval_mode(net):
        expected = net((x - model.mean) / model.std)
    assert torch.allclose(features, expected)
    assert torch.allclose(model.denormalize(model.normalize(x)), x, atol=1e-6)


def test_unknown_backbone_lists_names():
    with pytest.raises(ValueError, match="osnet_x0_25"):
        build_reid_model("not_a_net")


def test_file_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f").startswith("ba7816bf")
