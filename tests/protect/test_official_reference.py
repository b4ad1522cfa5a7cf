"""PixelFade in the official configuration equals an independent port of the official loop.

The reference below is written from the description of the official code in ``algorithms.md``
1.2, in plain torch: it shares nothing with the library but the model (its normalisation
constants and its eval-mode forward). Both get the same noise and the same official masks, which
are drawn once over the flattened batch, per element, so they are not balanced per image and the
``N mod I`` leftover elements are never replaced.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from torchreid_pixelfade.protect import PixelFade

STEPS = 100
# The random TinyReID's feature MSE goes from 0 (original) to about 0.004 (pure noise), so the
# official 0.03 would always hold; 5e-4 makes the loop alternate between both branches.
EPS = 5e-4
OFFICIAL = {"constraint_scope": "batch", "clamp": "batch", "quantize": False,
            "loss_reduction": "mean", "mask_index": "step", "mask_unit": "element",
            "co_every_step": True, "eps_mode": "absolute", "momentum": 0.6, "beta": 0.01,
            "beta_temp": 0.04, "num_masks": 5, "no_replace_last": 5, "target": "noise",
            "noise_weight": 1.0, "replacement": "replace"}


@dataclasses.dataclass
class Trace:
    """What the reference loop did: its output and how often each branch ran."""

    protected: torch.Tensor  # (B, 3, H, W) normalised, after the last update and clamp
    replacements: int  # steps with a partial replacement
    held: int  # steps where the constraint held (small step)


def official_masks(shape: tuple, num_masks: int, generator: torch.Generator) -> torch.Tensor:
    """``(I, B, C, H, W)`` bool masks over the flattened batch (official construction).

    Keeps the set of not yet picked element indices; mask i takes ``N // I`` of them uniformly
    without replacement. Element-wise (channels independent), not balanced per image; the
    ``N mod I`` elements left over belong to no mask.
    """
    total = torch.Size(shape).numel()
    remaining = torch.arange(total)
    masks = torch.zeros(num_masks, total, dtype=torch.bool)
    for i in range(num_masks):
        order = torch.randperm(len(remaining), generator=generator)
        masks[i, remaining[order[:total // num_masks]]] = True
        remaining = remaining[order[total // num_masks:]]
    return masks.view(num_masks, *shape)


def official_loop(features, x: torch.Tensor, eta: torch.Tensor, masks: torch.Tensor,
                  warmup: int, eps: float = EPS) -> Trace:
    """The official PixelFade loop (``algorithms.md`` 1.2) on a normalised batch ``x``."""
    num_masks = len(masks)
    protected, momentum = x.clone(), torch.zeros_like(x)
    with torch.no_grad():
        original = features(x)
    low, high = x.min(), x.max()
    replace, replacements, held = True, 0, 0
    for t in range(STEPS):
        if t < warmup or replace:
            protected = torch.where(masks[t % num_masks], eta, protected)
            replacements += 1
        protected = protected.detach().requires_grad_(True)
        loss = ((features(protected) - original) ** 2).mean()  # one scalar for the batch
        grad, = torch.autograd.grad(loss, protected)
        grad = grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True)
        momentum = 0.6 * momentum + grad
        replace = bool(loss < eps) and t < STEPS - 5
        held += replace
        step = 0.01 if replace else 0.04
        protected = torch.clamp(protected.detach() - step * momentum, low, high)
    return Trace(protected, replacements, held)


def batch_of(images: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` distinct images: the fixture's eight, their mirrors, then rolled copies."""
    pool = torch.cat([images, images.flip(3), images.roll(16, dims=2)])
    return pool[:size]


@pytest.mark.parametrize("batch, warmup", [(6, 5), (4, 5), (5, 5), (6, 0), (20, 5)])
def test_matches_the_official_loop_bitwise(random_model, images, batch, warmup):
    x = batch_of(images, batch)
    generator = torch.Generator().manual_seed(batch)
    eta = torch.randn(x.shape, generator=generator)
    masks = official_masks(x.shape, 5, generator)
    mean, std = random_model.mean, random_model.std
    trace = official_loop(random_model.forward_normalized, (x - mean) / std, eta, masks, warmup)
    expected = (trace.protected * std + mean).clamp(0, 1)

    protector = PixelFade(random_model, steps=STEPS, warmup_steps=warmup, eps=EPS, seed=0,
                          **OFFICIAL)
    result = protector.protect(x, noise=eta, masks=masks)

    # not vacuous: both branches ran, and replacements happened after the warm-up
    assert 0 < trace.held < STEPS - 5 and trace.replacements > warmup, trace
    # bitwise: same operations in the same order; the only reordering is the loss (mean over
    # (B, D) there, mean over D then over B here), whose gradient is the same for D = 32
    assert torch.equal(result.images, expected)
    # the leftover elements of the official masks are never replaced
    covered = masks.any(dim=0)
    assert (~covered).sum() == x.numel() % 5
    if warmup >= 5:
        assert torch.equal(result.replaced_fraction, covered.float().mean(dim=(1, 2, 3)))


def test_official_masks_are_batch_level_not_balanced_per_image():
    shape = (6, 3, 64, 32)
    masks = official_masks(shape, 5, torch.Generator().manual_seed(0))
    assert (masks.sum(dim=0) <= 1).all()
    assert masks.flatten(1).sum(dim=1).tolist() == [6 * 3 * 64 * 32 // 5] * 5
    per_image = masks.flatten(2).sum(dim=2)  # (I, B)
    assert len(set(per_image.flatten().tolist())) > 1  # about, not exactly, 20% per image
