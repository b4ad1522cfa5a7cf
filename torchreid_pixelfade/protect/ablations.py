"""PixelFade's ablations (paper Tables 3-4, Fig. 4) as two small tables of pure functions.

* :data:`TARGETS`: what the objective pulls the image towards, i.e. the values the Partial
  Replacement writes. ``(z0, noise, bounds, noise_weight) -> (B, C, H, W)``, all in the model's
  normalised space; ``bounds`` is the ``(low, high)`` pair of the clamp, broadcastable to ``z0``.
* :data:`REPLACEMENTS`: how the image moves towards the target, a :class:`Replacement`: what
  the PRO writes into the current mask (``write``, None for no PRO) and an extra term of the
  Constraint Operation's loss (``penalty``).

PixelFade looks its two functions up once by name, so its step has no ablation branches.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

Bounds = tuple[torch.Tensor, torch.Tensor]
Reduce = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------- targets

def noise_target(z0: torch.Tensor, noise: torch.Tensor, bounds: Bounds,
                 noise_weight: float) -> torch.Tensor:
    """PixelFade's target: ``(1 - w) x + w eta`` (w = 1: the noise itself; paper Table 3)."""
    return (1 - noise_weight) * z0 + noise_weight * noise


def zeros_target(z0: torch.Tensor, noise: torch.Tensor, bounds: Bounds,
                 noise_weight: float) -> torch.Tensor:
    """0 in normalised space: the dataset's mean colour."""
    return torch.zeros_like(z0)


def other_target(z0: torch.Tensor, noise: torch.Tensor, bounds: Bounds,
                 noise_weight: float) -> torch.Tensor:
    """Another image of the batch, rolled by one (another identity when the batch has several)."""
    return z0.roll(1, dims=0)


def contrastive_target(z0: torch.Tensor, noise: torch.Tensor, bounds: Bounds,
                       noise_weight: float) -> torch.Tensor:
    """Push away from the original: each value's farthest valid value."""
    low, high = (bound.expand_as(z0) for bound in bounds)
    return torch.where(z0 - low > high - z0, low, high)


TargetFn = Callable[[torch.Tensor, torch.Tensor, Bounds, float], torch.Tensor]

TARGETS: dict[str, TargetFn] = {"noise": noise_target, "zeros": zeros_target,
                                "other": other_target, "contrastive": contrastive_target}


# ---------------------------------------------------------------------------- replacements

def write_target(z: torch.Tensor, target: torch.Tensor, noise: torch.Tensor,
                 amplitude: float) -> torch.Tensor:
    """``'replace'``: the PRO writes the target (PixelFade)."""
    return target


def write_perturbation(z: torch.Tensor, target: torch.Tensor, noise: torch.Tensor,
                       amplitude: float) -> torch.Tensor:
    """``'perturb'``: the PRO adds ``amplitude * eta`` to the masked values instead."""
    return z + amplitude * noise


def no_penalty(z: torch.Tensor, target: torch.Tensor, weight: float,
               reduce: Reduce = torch.mean) -> float:
    """No extra loss term (adding 0.0 leaves the loss and its gradient bit for bit)."""
    return 0.0


def l1_penalty(z: torch.Tensor, target: torch.Tensor, weight: float,
               reduce: Reduce = torch.mean) -> torch.Tensor:
    """``'l1'``: ``weight * reduce_b mean|z_b - target_b|``, a scalar added to the CO loss.

    Reduced over the batch like the feature distance it is added to (``torch.mean`` or
    ``torch.sum``), so each image minimises ``d_b + weight * mean|z_b - target_b|`` (up to the
    common factor 1/B of the mean).
    """
    return weight * reduce((z - target).abs().mean(dim=(1, 2, 3)))


class Replacement(NamedTuple):
    """A replacement strategy.

    Attributes:
        write: ``(z, target, noise, perturb_amplitude) -> (B, C, H, W)``, the values the PRO
            writes into the current mask; None: no PRO at all.
        penalty: ``(z, target, l1_weight, reduce) -> scalar``, per-image terms reduced over
            the batch by ``reduce`` (``torch.mean`` or ``torch.sum``, as the feature distance
            it is added to) before the gradient of the Constraint Operation.
    """

    write: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor] | None
    penalty: Callable[[torch.Tensor, torch.Tensor, float, Reduce], torch.Tensor | float]


REPLACEMENTS: dict[str, Replacement] = {
    "replace": Replacement(write=write_target, penalty=no_penalty),
    "perturb": Replacement(write=write_perturbation, penalty=no_penalty),
    "l1": Replacement(write=None, penalty=l1_penalty),
}
