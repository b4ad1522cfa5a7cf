"""The contract every registered protector keeps (timm style: one test over all names)."""
import dataclasses
import json

import pytest
import torch

from torchreid_pixelfade.protect import (ProtectionResult, build_protector, list_protectors,
                                         protector_params)

NAMES = list_protectors()
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FAST = {"steps": 3}  # applied to the protectors that have the field


def fields(name: str) -> set[str]:
    return {field.name for field in dataclasses.fields(protector_params(name))}


def build(name: str, model, **kwargs):
    fast = {key: value for key, value in FAST.items() if key in fields(name)}
    return build_protector(name, model, **{**fast, **kwargs})


def seeded(name: str) -> bool:
    return "seed" in fields(name)


@pytest.fixture
def x(images):
    return images[:2]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_shape_range_grid_and_device(name, device, random_model, x):
    model, x = random_model.to(device), x.to(device)
    result = build(name, model, **({"seed": 0} if seeded(name) else {})).protect(x)
    assert isinstance(result, ProtectionResult)
    out = result.images
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out * 255, (out * 255).round())  # quantize defaults to True
    for diagnostic in (result.distance, result.constraint_met, result.replaced_fraction):
        assert diagnostic is None or (diagnostic.shape == (2,) and diagnostic.device == x.device)
    assert result.distance is not None  # a model was given


@pytest.mark.parametrize("name", NAMES)
def test_call_returns_the_images_of_protect(name, random_model, x):
    kwargs = {"seed": 0} if seeded(name) else {}
    assert torch.equal(build(name, random_model, **kwargs)(x),
                       build(name, random_model, **kwargs).protect(x).images)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name, random_model, x):
    kwargs = {"seed": 0} if seeded(name) else {}
    assert torch.equal(build(name, random_model, **kwargs)(x),
                       build(name, random_model, **kwargs)(x))


@pytest.mark.parametrize("name", [name for name in NAMES if seeded(name)])
def test_without_seed_outputs_differ(name, random_model, x):
    assert not torch.equal(build(name, random_model)(x), build(name, random_model)(x))


@pytest.mark.parametrize("name", NAMES)
def test_hparams_round_trip(name, random_model):
    protector = build(name, random_model, **({"seed": 5} if seeded(name) else {}))
    params = protector.hparams()
    assert json.loads(json.dumps(params)) == params
    assert params == {**dataclasses.asdict(protector.params), **params}
    assert build_protector(name, random_model, **params).hparams() == params


@pytest.mark.parametrize("name", NAMES)
def test_params_have_defaults_docs_and_quantize(name):
    params_cls = protector_params(name)
    for field in dataclasses.fields(params_cls):
        assert field.default is not dataclasses.MISSING, field.name
        assert field.metadata.get("doc"), field.name
    assert "quantize" in fields(name)
    assert dataclasses.asdict(params_cls()) == {
        field.name: field.default for field in dataclasses.fields(params_cls)}


@pytest.mark.parametrize("name", NAMES)
def test_name_and_range_without_quantize(name, random_model, x):
    protector = build(name, random_model, quantize=False,
                      **({"seed": 0} if seeded(name) else {}))
    assert protector.name == name
    out = protector(x)
    assert out.min() >= 0 and out.max() <= 1
