"""The public boundary of every protector: non-finite values, dtypes, empty and tiny batches."""
import dataclasses

import pytest
import torch

from torchreid_pixelfade.models import AuthorizedModel, build_reid_model
from torchreid_pixelfade.protect import (build_protector, feature_distance, list_protectors,
                                         protector_params)
from torchreid_pixelfade.protect.functional import check_images

NAMES = list_protectors()


def build(name, model, **kwargs):
    fields = {field.name for field in dataclasses.fields(protector_params(name))}
    fast = {key: value for key, value in {"steps": 2, "seed": 0}.items() if key in fields}
    return build_protector(name, model, **{**fast, **kwargs})


@pytest.fixture(scope="module")
def osnet():
    torch.manual_seed(0)
    return AuthorizedModel(build_reid_model("osnet_x0_25"), name="osnet_x0_25")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_refused(value, images):
    x = images[:2].clone()
    x[1, 2, 5, 7] = value
    with pytest.raises(ValueError, match="finite"):
        check_images(x)


@pytest.mark.parametrize("name", NAMES)
def test_every_protector_refuses_nan_images(name, random_model, images):
    x = images[:2].clone()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"1 NaN"):
        build(name, random_model).protect(x)


@pytest.mark.parametrize("name", NAMES)
def test_float64_images_are_protected_in_float64(name, random_model, images):
    x = images[:2].double()
    result = build(name, random_model).protect(x)
    out = result.images
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out * 255, (out * 255).round())
    assert result.distance.dtype == torch.float64
    recomputed = feature_distance(random_model(out), random_model(x))
    assert torch.allclose(recomputed, result.distance)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_half_precision_images_are_refused_with_the_supported_dtypes(name, dtype, random_model,
                                                                      images):
    with pytest.raises(ValueError, match=r"float32 or float64.*\.float\(\)"):
        build(name, random_model).protect(images[:2].to(dtype))


def test_integer_images_are_refused():
    with pytest.raises(ValueError, match="float"):
        check_images(torch.zeros(1, 3, 8, 4, dtype=torch.uint8))


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_returns_an_empty_result(name, osnet):
    x = torch.rand(0, 3, 64, 32)
    result = build(name, osnet).protect(x)
    assert result.images.shape == x.shape and result.images.dtype == x.dtype
    assert result.distance.shape == (0,)
    for diagnostic in (result.constraint_met, result.replaced_fraction):
        assert diagnostic is None or diagnostic.shape == (0,)


def test_empty_batch_diagnostics_match_those_of_a_full_batch(random_model, images):
    for name in NAMES:
        full = build(name, random_model).protect(images[:1])
        empty = build(name, random_model).protect(images[:0])
        for field in ("distance", "constraint_met", "replaced_fraction"):
            a, b = getattr(full, field), getattr(empty, field)
            assert (a is None) == (b is None), (name, field)
            assert a is None or (a.dtype == b.dtype and b.shape == (0,)), (name, field)


@pytest.mark.parametrize("name", NAMES)
def test_images_too_small_for_the_model_name_the_model_and_size(name, osnet):
    with pytest.raises(ValueError, match=r"osnet_x0_25.*8x4"):
        build(name, osnet).protect(torch.rand(1, 3, 8, 4))


def test_empty_batch_with_supplied_draws(osnet):
    x = torch.rand(0, 3, 64, 32)
    masks = torch.zeros(5, 0, 3, 64, 32, dtype=torch.bool)
    result = build("pixelfade", osnet).protect(x, noise=torch.zeros_like(x), masks=masks)
    assert result.images.shape == x.shape and result.replaced_fraction.shape == (0,)
