"""``PixelFade.protect(images, noise=, masks=)``: caller-supplied randomness."""
import pytest
import torch

from torchreid_pixelfade.protect import PixelFade, random_mask_ids


def fast(model, **kwargs):
    return PixelFade(model, **{"steps": 8, "seed": 0, **kwargs})


def as_masks(mask_ids: torch.Tensor, num_masks: int = 5) -> torch.Tensor:
    """``(B, C, H, W)`` ids -> ``(I, B, C, H, W)`` bool masks."""
    return torch.stack([mask_ids == j for j in range(num_masks)])


def generator_draws(x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The noise and masks a protector seeded with ``seed`` draws, in its order."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator)
    return noise, as_masks(random_mask_ids(x.shape, 5, "element", generator))


def test_supplying_the_generators_draws_changes_nothing(random_model, images):
    x = images[:3]
    noise, masks = generator_draws(x)
    expected = fast(random_model).protect(x)
    supplied = fast(random_model, seed=123).protect(x, noise=noise, masks=masks)
    assert torch.equal(supplied.images, expected.images)
    assert torch.equal(supplied.distance, expected.distance)


def test_supplied_noise_skips_its_draw(random_model, images):
    # the masks then come from the generator's first draw
    x = images[:2]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    masks = as_masks(random_mask_ids(x.shape, 5, "element", torch.Generator().manual_seed(0)))
    assert torch.equal(fast(random_model).protect(x, noise=noise).images,
                       fast(random_model).protect(x, noise=noise, masks=masks).images)
    assert not torch.equal(fast(random_model).protect(x, noise=noise).images,
                           fast(random_model)(x))


def test_uncovered_values_are_never_replaced(random_model, images):
    x = images[:2]
    noise, masks = generator_draws(x)
    masks[:, 1] = False  # image 1 in no mask
    masks[2, 0] = False  # image 0 misses one mask
    result = fast(random_model).protect(x, noise=noise, masks=masks)
    assert result.replaced_fraction[1] == 0
    assert torch.equal(result.replaced_fraction[0], masks[:, 0].any(dim=0).float().mean())


def test_masks_are_used_by_index(random_model, images):
    # warm-up only, no CO movement: after step t < I the values of masks 0..t hold the noise
    x = images[:2]
    noise, masks = generator_draws(x)
    protector = PixelFade(random_model, steps=2, beta=0.0, beta_temp=0.0, quantize=False)
    out = random_model.normalize(protector.protect(x, noise=noise.clamp(-1, 1),
                                                   masks=masks).images)
    written = masks[0] | masks[1]
    assert torch.allclose(out[written], noise.clamp(-1, 1)[written], atol=1e-5)
    assert torch.allclose(out[~written], random_model.normalize(x)[~written], atol=1e-5)


@pytest.mark.parametrize("noise, message", [
    (torch.zeros(2, 3, 64, 32), "shape"), (torch.zeros(1, 3, 64, 32, dtype=torch.long), "float"),
    ([0.0], "float tensor")])
def test_bad_noise_raises(random_model, images, noise, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fast(random_model).protect(images[:1], noise=noise)


def test_bad_masks_raise(random_model, images):
    x = images[:2]
    _, masks = generator_draws(x)
    protector = fast(random_model)
    with pytest.raises(ValueError, match="bool"):
        protector.protect(x, masks=masks.float())
    with pytest.raises(ValueError, match=r"shape \(num_masks, B, C, H, W\)"):
        protector.protect(x, masks=masks[:4])
    with pytest.raises(ValueError, match=r"shape \(num_masks, B, C, H, W\)"):
        protector.protect(x[:1], masks=masks)
    with pytest.raises(TypeError, match="bool tensor"):
        protector.protect(x, masks=masks.tolist())
    overlapping = masks.clone()
    overlapping[1] |= masks[0]
    with pytest.raises(ValueError, match="disjoint"):
        protector.protect(x, masks=overlapping)
