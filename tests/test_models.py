import numpy as np
import pytest
import torch
from torch import nn

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


# ------------------------------------------------------ load_weights refuses partial loads


@pytest.fixture(scope="module")
def osnet_weights(tmp_path_factory):
    """A state dict of osnet_x0_25 (random init, 3 classes) saved to a file; its path."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "osnet_x0_25.pth"
    torch.save(build_reid_model("osnet_x0_25", num_classes=3).state_dict(), path)
    return path


def test_same_architecture_loads_and_another_classifier_size_is_skipped(osnet_weights):
    source = torch.load(osnet_weights)
    model = load_weights(build_reid_model("osnet_x0_25", num_classes=7), osnet_weights)
    target = model.state_dict()
    assert model.classifier.out_features == 7
    assert all(torch.equal(source[key], value) for key, value in target.items()
               if not key.startswith("classifier."))


@pytest.mark.parametrize("other", ["mobilenetv2_x1_0", "osnet_x1_0"])
def test_weights_of_another_architecture_are_refused(other, tmp_path):
    # the tester's reports: mobilenetv2 "loaded 6 of 567 layers" (all num_batches_tracked),
    # osnet_x1_0 "85 of 567"; both used random weights for the rest and exited 0
    torch.save(build_reid_model(other).state_dict(), tmp_path / f"{other}.pth")
    model = build_reid_model("osnet_x0_25")
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"{other}\.pth: .*of \d+ parameters") as error:
        load_weights(model, tmp_path / f"{other}.pth")
    assert "num_batches_tracked" not in str(error.value)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_refusal_names_the_counts_and_first_missing_keys(tmp_path):
    torch.save(build_reid_model("osnet_x1_0").state_dict(), tmp_path / "w.pth")
    model = build_reid_model("osnet_x0_25")
    with pytest.raises(ValueError) as error:
        load_weights(model, tmp_path / "w.pth")
    message = str(error.value)
    parameters = len(list(model.parameters()))
    assert f"of {parameters} parameters" in message and "not loaded" in message
    assert "conv1.conv.weight" in message  # the first layer differs in width


def test_batchnorm_counters_alone_match_nothing(tmp_path):
    counters = {key: value for key, value in TinyReID().state_dict().items()
                if key.endswith("num_batches_tracked")}
    torch.save(counters, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="w.pth: no layer matches"):
        load_weights(TinyReID(), tmp_path / "w.pth")


def test_missing_running_statistics_are_refused(tmp_path):
    state = TinyReID().state_dict()
    del state["features.1.running_var"]
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"not loaded: \['features.1.running_var"):
        load_weights(TinyReID(), tmp_path / "w.pth")


def test_allow_missing_prefixes(tmp_path):
    torch.save(TinyReID(num_classes=5).state_dict(), tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"classifier\.weight"):
        load_weights(TinyReID(num_classes=9), tmp_path / "w.pth", allow_missing=())
    state = TinyReID().state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("features.0.")},
               tmp_path / "v.pth")
    load_weights(TinyReID(), tmp_path / "v.pth", allow_missing=("features.0.", "classifier"))
    with pytest.raises(ValueError, match="features.0.bias"):
        load_weights(TinyReID(), tmp_path / "v.pth")


def test_authorized_model_runs_in_its_own_dtype_and_returns_the_inputs():
    torch.manual_seed(0)
    model = AuthorizedModel(TinyReID())
    x = torch.rand(2, 3, 16, 8)
    features = model(x.double())
    assert features.dtype == torch.float64
    assert torch.allclose(features, model(x).double(), atol=1e-5)
    pixels = x.double().requires_grad_(True)
    model(pixels).sum().backward()
    assert pixels.grad.dtype == torch.float64


@pytest.mark.parametrize("key", ["state_dict", "net", "model"])
def test_checkpoint_containers_of_torchreid_agw_and_irra_load(key, tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    torch.save({key: net.state_dict(), "epoch": 3}, tmp_path / "c.pth")
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    load_weights(other, tmp_path / "c.pth")
    assert torch.equal(other[0].weight, net[0].weight)
