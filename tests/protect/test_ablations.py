"""The ablation options of PixelFade (paper Tables 3-4, Fig. 4) change what they claim to."""
import pytest
import torch

from torchreid_pixelfade.metrics import ssim
from torchreid_pixelfade.protect import PixelFade


def replace_only(model, **kwargs):
    """Warm-up replacements only (one full cycle), no CO movement: shows what PRO writes."""
    return PixelFade(model, steps=5, beta=0.0, beta_temp=0.0, seed=0, quantize=False, **kwargs)


def test_noise_weight_zero_writes_the_original(random_model, images):
    out = replace_only(random_model, noise_weight=0.0)(images)
    assert torch.allclose(out, images, atol=1e-5)


def test_noise_weight_moves_towards_noise(random_model, images):
    half = ssim(replace_only(random_model, noise_weight=0.5)(images), images).mean()
    full = ssim(replace_only(random_model, noise_weight=1.0)(images), images).mean()
    assert full < half < 0.99


def test_zeros_target_writes_the_mean_colour(random_model, images):
    out = replace_only(random_model, target="zeros")(images)
    mean = random_model.mean.view(1, 3, 1, 1).expand_as(out)
    assert torch.allclose(out, mean, atol=1e-6)


def test_other_target_writes_another_image_of_the_batch(random_model, images):
    out = replace_only(random_model, target="other")(images[:3])
    assert torch.allclose(out, images[:3].roll(1, dims=0), atol=1e-5)


def test_contrastive_target_writes_the_farthest_valid_value(random_model, images):
    out = replace_only(random_model, target="contrastive")(images)
    assert torch.allclose(out, (images <= 0.5).float(), atol=1e-5)


def test_perturb_adds_bounded_noise_instead_of_replacing(random_model, images):
    small = replace_only(random_model, replacement="perturb", perturb_amplitude=0.1)(images)
    large = replace_only(random_model, replacement="perturb", perturb_amplitude=1.0)(images)
    assert 0 < (small - images).abs().mean() < (large - images).abs().mean()


def test_l1_strategy_replaces_nothing_but_moves_towards_the_noise(random_model, images):
    result = PixelFade(random_model, steps=15, replacement="l1", l1_weight=10.0, seed=0,
                       quantize=False).protect(images)
    assert torch.equal(result.replaced_fraction, torch.zeros(len(images)))
    assert (result.images - images).abs().mean() > 0.01


def test_unknown_ablation_names_raise(random_model):
    with pytest.raises(ValueError, match="target"):
        PixelFade(random_model, target="blur")
    with pytest.raises(ValueError, match="replacement"):
        PixelFade(random_model, replacement="swap")
