"""The shared pure functions and the ablation tables."""
import pytest
import torch

from torchreid_pixelfade.io import quantize
from torchreid_pixelfade.protect import PixelFade
from torchreid_pixelfade.protect.ablations import REPLACEMENTS, TARGETS
from torchreid_pixelfade.protect.base import check_images, feature_distance, make_generator
from torchreid_pixelfade.protect.functional import normalized_momentum, quantize_ste, within


def test_base_reexports_the_functional_helpers():
    from torchreid_pixelfade.protect import functional
    assert check_images is functional.check_images
    assert feature_distance is functional.feature_distance
    assert make_generator is functional.make_generator


def test_within_is_eq1_less_or_equal():
    distance = torch.tensor([0.0, 0.5, 0.5000001, 2.0])
    assert within(distance, torch.tensor(0.5)).tolist() == [True, True, False, False]


def test_eps_zero_is_met_by_the_untouched_image(random_model, images):
    # d = 0 <= 0 before step 0, so the PRO runs at step 0 even without warm-up (one step: one
    # mask of five); after it d > 0 and nothing more is replaced
    result = PixelFade(random_model, steps=2, warmup_steps=0, no_replace_last=0, eps=0.0,
                       seed=0).protect(images[:2])
    assert torch.allclose(result.replaced_fraction, torch.full((2,), 0.2), atol=1e-3)


def test_quantize_ste_forward_is_the_stored_image_and_backward_the_identity():
    pixels = torch.rand(2, 3, 8, 4, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    pixels.requires_grad_(True)
    out = quantize_ste(pixels)
    assert torch.equal(out.detach(), quantize(pixels.detach()))
    out.sum().backward()
    assert torch.equal(pixels.grad, torch.ones_like(pixels))


def test_quantize_ste_in_another_space_rounds_in_pixels():
    scale = 2.0
    values = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1)) * scale
    out = quantize_ste(values, lambda v: v / scale, lambda p: p * scale)
    assert torch.allclose(out, quantize(values / scale) * scale, atol=1e-6)


def test_normalized_momentum_normalises_each_image():
    grad = torch.stack([torch.full((3, 2, 2), 4.0), torch.full((3, 2, 2), -0.5)])
    momentum = torch.ones(2, 3, 2, 2)
    out = normalized_momentum(momentum, grad, 0.5)
    assert torch.allclose(out[0], torch.full((3, 2, 2), 1.5))
    assert torch.allclose(out[1], torch.full((3, 2, 2), -0.5))
    assert torch.equal(normalized_momentum(momentum, torch.zeros_like(grad), 0.5), momentum / 2)
    assert torch.equal(momentum, torch.ones(2, 3, 2, 2))  # inputs untouched


def test_ablation_tables_hold_named_functions():
    assert list(TARGETS) == ["noise", "zeros", "other", "contrastive"]
    assert list(REPLACEMENTS) == ["replace", "perturb", "l1"]
    assert REPLACEMENTS["l1"].write is None  # no partial replacement at all
    z = torch.zeros(2, 3, 4, 4)
    target = torch.ones_like(z)
    assert REPLACEMENTS["replace"].penalty(z, target, 5.0) == 0.0
    # weight x mean|z - target| per image, averaged over the batch like the feature distance
    target[1] = 3.0
    assert REPLACEMENTS["l1"].penalty(z, target, 5.0).item() == pytest.approx(5.0 * (1 + 3) / 2)


def test_noise_target_interpolates():
    z0, noise = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    bounds = (torch.full((1, 3, 1, 1), -2.0), torch.full((1, 3, 1, 1), 2.0))
    assert torch.allclose(TARGETS["noise"](z0, noise, bounds, 0.25), noise * 0.25)
    assert torch.equal(TARGETS["contrastive"](z0 + 0.5, noise, bounds, 1.0),
                       torch.full((1, 3, 2, 2), -2.0))
