"""The two-stream VI models: AGW's checkpoint layout, modal semantics, shared trunk, encoders."""
import contextlib

import pytest
import torch
from torch import nn

from torchreid_pixelfade.engines.visible_infrared.model import (
    BOTH,
    THERMAL,
    VISIBLE,
    AGWTwoStream,
    BackboneTwoStream,
    NonLocal,
    build_vi_model,
    gem_pool,
    split_backbone,
    thermal_encoder,
    visible_encoder,
)
from torchreid_pixelfade.models import AuthorizedModel, build_reid_model
from torchreid_pixelfade.protect import (
    build_protector,
    list_protectors,
    protector_params,
)

NUM_CLASSES = 7


def bn_shapes(prefix: str, channels: int) -> dict:
    shapes = {f"{prefix}.{name}": (channels,)
              for name in ("weight", "bias", "running_mean", "running_var")}
    shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def resnet50_shapes(prefix: str) -> dict:
    """Keys of AGW's resnet.py ResNet-50 (no fc): conv1, bn1, layerN.M.{convK,bnK,downsample}."""
    shapes = {f"{prefix}.conv1.weight": (64, 3, 7, 7), **bn_shapes(f"{prefix}.bn1", 64)}
    inplanes = 64
    for layer, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for block in range(blocks):
            p = f"{prefix}.layer{layer}.{block}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            for k, channels in ((1, planes), (2, planes), (3, planes * 4)):
                shapes.update(bn_shapes(f"{p}.bn{k}", channels))
            if block == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                shapes.update(bn_shapes(f"{p}.downsample.1", planes * 4))
            inplanes = planes * 4
    return shapes


def non_local_shapes(prefix: str, channels: int, inter: int = 1) -> dict:
    names = ("g.0", "theta", "phi")
    shapes = {f"{prefix}.{name}.weight": (inter, channels, 1, 1) for name in names}
    shapes.update({f"{prefix}.{name}.bias": (inter,) for name in names})
    shapes[f"{prefix}.W.0.weight"] = (channels, inter, 1, 1)
    shapes[f"{prefix}.W.0.bias"] = (channels,)
    shapes.update(bn_shapes(f"{prefix}.W.1", channels))
    return shapes


def official_agw_shapes(num_classes: int) -> dict:
    """The state-dict layout of ``embed_net(class_num, no_local='on', gm_pool='on')``, written
    from the names in mangye16/Cross-Modal-Re-ID-baseline model.py and resnet.py."""
    shapes = {}
    for prefix in ("thermal_module.thermal", "visible_module.visible", "base_resnet.base"):
        shapes.update(resnet50_shapes(prefix))
    for stage, count, channels in ((2, 2, 512), (3, 3, 1024)):  # non_layers = [0, 2, 3, 0]
        for i in range(count):
            shapes.update(non_local_shapes(f"NL_{stage}.{i}", channels))
    shapes.update(bn_shapes("bottleneck", 2048))
    shapes["classifier.weight"] = (num_classes, 2048)
    return shapes


def test_agw_resnet50_matches_the_official_checkpoint_layout():
    torch.manual_seed(0)
    net = AGWTwoStream(num_classes=NUM_CLASSES)
    expected = official_agw_shapes(NUM_CLASSES)
    state = net.state_dict()
    assert sorted(state) == sorted(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected

    fake = {k: torch.randn(shape) if shape else torch.tensor(3) for k, shape in expected.items()}
    net.load_state_dict({"net": fake}["net"])  # strict, as test.py loads a '.t' checkpoint
    for key in ("thermal_module.thermal.conv1.weight", "NL_3.2.W.1.running_var",
                "base_resnet.base.layer4.2.bn3.weight", "classifier.weight"):
        assert torch.equal(net.state_dict()[key], fake[key])
    del fake

    base = net.base_resnet.base
    assert base.layer4[0].conv2.stride == (1, 1) and base.layer4[0].downsample[0].stride == (1, 1)
    assert not net.bottleneck.bias.requires_grad
    net.eval()
    with record_calls(net) as calls, torch.no_grad():
        maps = net.trunk(net.stem(None, torch.rand(2, 3, 64, 32), THERMAL))
    assert maps.shape == (2, 2048, 4, 2)  # last stride 1: a /16 map
    assert calls[:3] == ["layer1.0", "layer1.1", "layer1.2"]
    assert calls[3:] == ["layer2.0", "layer2.1", "layer2.2", "NL_2.0", "layer2.3", "NL_2.1",
                         "layer3.0", "layer3.1", "layer3.2", "layer3.3", "NL_3.0", "layer3.4",
                         "NL_3.1", "layer3.5", "NL_3.2", "layer4.0", "layer4.1", "layer4.2"]


@contextlib.contextmanager
def record_calls(net: AGWTwoStream):
    """Records the order in which the trunk's blocks and non-local blocks run."""
    calls = []
    modules = {f"layer{i}.{j}": block for i in range(1, 5)
               for j, block in enumerate(getattr(net.base_resnet.base, f"layer{i}"))}
    modules.update({name: m for name, m in net.named_modules() if isinstance(m, NonLocal)})
    hooks = [m.register_forward_hook(lambda *_, n=name: calls.append(n))
             for name, m in modules.items()]
    try:
        yield calls
    finally:
        for hook in hooks:
            hook.remove()


@pytest.fixture(scope="module")
def agw18():
    torch.manual_seed(0)
    return AGWTwoStream(num_classes=NUM_CLASSES, arch="resnet18")


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.rand(2, 3, 64, 32), torch.rand(2, 3, 64, 32)


def test_agw_outputs_by_mode(agw18, x):
    agw18.train()
    x_pool, logits = agw18(*x, modal=BOTH)
    assert x_pool.shape == (4, 512) and logits.shape == (4, NUM_CLASSES)
    agw18.eval()
    with torch.no_grad():
        pool, feat = agw18(*x, modal=BOTH)
        visible, thermal = agw18(x[0], None, VISIBLE)[1], agw18(None, x[1], THERMAL)[1]
    assert torch.allclose(feat.norm(dim=1), torch.ones(4)) and pool.shape == (4, 512)
    assert torch.allclose(feat, torch.cat([visible, thermal]), atol=1e-6)


def test_agw_non_local_placement_and_identity_init(agw18, x):
    agw18.eval()
    with record_calls(agw18) as calls, torch.no_grad():
        stem = agw18.stem(*x, VISIBLE)
        with_nl = agw18.trunk(stem)
    # ResNet-18 has 2 blocks per stage: layer3 gets 2 of AGW's 3 non-local blocks
    assert calls == ["layer1.0", "layer1.1", "layer2.0", "NL_2.0", "layer2.1", "NL_2.1",
                     "layer3.0", "NL_3.0", "layer3.1", "NL_3.1", "layer4.0", "layer4.1"]
    assert torch.allclose(with_nl, agw18.base_resnet(stem))  # W's BN starts at zero
    with torch.no_grad():
        agw18.NL_3[1].W[1].weight.fill_(1.0)
        changed = agw18.trunk(stem)
        agw18.NL_3[1].W[1].weight.zero_()
    assert not torch.allclose(changed, with_nl)


def test_agw_without_non_local_or_gem():
    net = AGWTwoStream(NUM_CLASSES, arch="resnet18", non_local=False, gem=False)
    assert not any(key.startswith("NL_") for key in net.state_dict())
    maps = torch.rand(2, 512, 4, 2)
    assert torch.allclose(net.pool(maps), maps.mean(dim=(2, 3)))


def test_gem_pool_is_the_cubic_mean():
    maps = torch.rand(2, 3, 4, 2)
    expected = maps.pow(3).mean(dim=(2, 3)).pow(1 / 3)
    assert torch.allclose(gem_pool(maps), expected, atol=1e-6)


def test_stems_are_modality_specific(agw18, x):
    agw18.eval()
    with torch.no_grad():
        before = [agw18.features(x[1], m) for m in (VISIBLE, THERMAL)]
        agw18.thermal_module.thermal.conv1.weight.add_(0.5)
        after = [agw18.features(x[1], m) for m in (VISIBLE, THERMAL)]
        agw18.thermal_module.thermal.conv1.weight.sub_(0.5)
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1])


@pytest.fixture(scope="module")
def osnet_net():
    torch.manual_seed(0)
    return build_vi_model("osnet_x0_25", NUM_CLASSES)


def test_backbone_two_stream_stems_separate_trunk_shared(osnet_net, x):
    visible = list(osnet_net.visible_module.parameters())
    thermal = list(osnet_net.thermal_module.parameters())
    assert len(visible) == len(thermal) > 0
    assert not {p.data_ptr() for p in visible} & {p.data_ptr() for p in thermal}
    assert [k for k, _ in osnet_net.named_children()][:3] == [
        "visible_module", "thermal_module", "trunk_module"]

    osnet_net.train()
    osnet_net.zero_grad()
    _, logits = osnet_net(x[0], None, VISIBLE)
    logits.sum().backward()
    assert all(p.grad is None for p in thermal)
    assert all(p.grad is not None for p in visible)
    trunk_grad = [p.grad.clone() for p in osnet_net.trunk_module.parameters()]
    _, logits = osnet_net(None, x[1], THERMAL)
    logits.sum().backward()  # the thermal path accumulates into the same trunk tensors
    changed = [not torch.equal(g, p.grad) for g, p in zip(trunk_grad,
                                                            osnet_net.trunk_module.parameters())]
    assert any(changed)
    osnet_net.zero_grad()


@pytest.mark.parametrize("name,stem", [("osnet_x0_25", ["conv1", "maxpool"]),
                                       ("resnet18", ["conv1", "bn1", "relu", "maxpool"])])
def test_split_keeps_the_backbone_forward(name, stem):
    torch.manual_seed(0)
    backbone = build_reid_model(name, NUM_CLASSES).eval()
    images = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        expected = backbone.featuremaps(images)
        net = BackboneTwoStream(backbone, NUM_CLASSES).eval()
        got = net.trunk(net.visible_module(images))
    assert split_backbone(build_reid_model(name), None)[0] == stem
    assert torch.allclose(got, expected, atol=1e-5)


def test_backbone_non_local_and_errors():
    backbone = build_reid_model("osnet_x0_25", NUM_CLASSES)
    net = BackboneTwoStream(backbone, NUM_CLASSES, non_local=["conv3"])
    block = net.trunk_module.conv3_non_local
    assert isinstance(block, NonLocal) and block.inter_channels == block.theta.in_channels // 2
    with pytest.raises(ValueError, match="not trunk children"):
        BackboneTwoStream(build_reid_model("osnet_x0_25"), 2, non_local=["conv1"])
    with pytest.raises(ValueError, match="no children"):
        split_backbone(backbone, stem=["stem"])
    with pytest.raises(ValueError, match="pass stem="):
        split_backbone(nn.Sequential(nn.Conv2d(3, 4, 3)))


def test_modal_errors(osnet_net, x):
    with pytest.raises(ValueError, match="modal must be"):
        osnet_net(*x, modal=3)
    with pytest.raises(ValueError, match="needs x_thermal"):
        osnet_net(x[0], None, modal=BOTH)
    with pytest.raises(ValueError, match="one modality"):
        osnet_net.features(x[0], BOTH)


def test_thermal_encoder_is_the_unnormalised_bn_feature(osnet_net, x):
    osnet_net.train()
    f = AuthorizedModel(thermal_encoder(osnet_net), freeze=False)
    images = x[1]
    features = f(images)
    assert osnet_net.training  # AuthorizedModel restores the mode
    osnet_net.eval()
    with torch.no_grad():
        inputs = f.normalize(images)
        expected = osnet_net.bottleneck(osnet_net.pooled(None, inputs, THERMAL))
        official = osnet_net(None, inputs, THERMAL)[1]
        rgb = AuthorizedModel(visible_encoder(osnet_net), freeze=False)(images)
    assert features.shape == (2, osnet_net.feature_dim)
    assert torch.allclose(features, expected, atol=1e-6)
    assert torch.allclose(nn.functional.normalize(features), official, atol=1e-6)
    assert not torch.allclose(features.norm(dim=1), torch.ones(2))
    assert not torch.allclose(rgb, features)  # a different stem
    assert thermal_encoder(osnet_net, "pool")(inputs).min() >= 0  # GeM of ReLU maps


@pytest.mark.parametrize("name", list_protectors())
def test_every_protector_runs_on_the_thermal_path(name, osnet_net, x):
    fields = {field for field in protector_params(name).__dataclass_fields__}
    kwargs = {key: value for key, value in {"steps": 3, "seed": 0}.items() if key in fields}
    model = AuthorizedModel(thermal_encoder(osnet_net), freeze=False)
    result = build_protector(name, model, **kwargs).protect(x[1])
    assert result.images.shape == x[1].shape
    assert 0 <= result.images.min() and result.images.max() <= 1
