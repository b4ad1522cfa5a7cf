"""PixelFade (Zhang et al., ACM MM 2024): noise-guided protection by Progressive Pixel Fading.

Objective (Eq. 1): make the protected image ``x_p`` as close as possible to a fixed noise image
``eta`` while the authorised feature stays close, ``d(f(x_p), f(x)) <= eps``. Each step:

1. Partial Replacement (PRO): images whose constraint held at the previous step (and every image
   during warm-up) write ``eta`` into their next mask of a disjoint, covering set of ``I`` masks;
2. one forward and one backward pass to the input give ``grad d``;
3. Constraint Operation (CO): momentum over the per-image mean-|g| normalised gradient, a step of
   ``beta`` where the constraint holds and ``beta_temp`` where it does not, then the clamp.

All arithmetic happens in the model's normalised space, as in the official code, so ``eta`` is
N(0, 1) there (N(mean_c, std_c^2) in pixels) and ``beta`` = 0.01 keeps its meaning. Every switch
between the paper and the official code is a constructor argument; see ``algorithms.md`` 1.3.
"""
from __future__ import annotations

import dataclasses

import torch

from ..io import quantize as quantize_8bit
from ..models import AuthorizedModel
from .base import (ProtectionResult, Protector, check_images, feature_distance, make_generator,
                   register_protector)
from .masks import random_mask_ids, replace_values


@dataclasses.dataclass
class _State:
    """Per-batch optimisation state."""

    z: torch.Tensor  # current protected images, normalised space
    momentum: torch.Tensor
    satisfied: torch.Tensor  # (B,) constraint held at the previous step
    replaced: torch.Tensor  # (B, C, H, W) bool, replaced at least once
    pro_count: torch.Tensor  # (B,) number of PROs done


@register_protector("pixelfade")
class PixelFade(Protector):
    """PixelFade protector; ``PixelFade(model, ...)(images)`` returns protected images.

    Args:
        model: the authorised model (normalisation inside, see :class:`AuthorizedModel`).
        steps: T, total optimisation steps.
        warmup_steps: steps that replace whatever the constraint says (one cycle when = I).
        num_masks: I, number of disjoint masks.
        eps: constraint bound on the feature distance.
        eps_mode: ``'absolute'``: ``eps`` bounds the distance itself (paper, official);
            ``'relative'``: ``eps`` is a fraction of the original feature's mean square
            (``mean(f(x)^2)``, or its sum for ``loss_reduction='sum'``), one value for any backbone.
        momentum: alpha, momentum of the normalised gradient.
        beta: CO step size where the constraint holds.
        beta_temp: CO step size where it does not (official code; set = beta for the paper).
        no_replace_last: no replacement in the last steps (official rule: the constraint state
            is forced to "violated" from step ``T - no_replace_last`` on).
        loss_reduction: ``'mean'`` over feature dimensions (MSE, official) or ``'sum'`` (the
            paper's squared L2 distance).
        constraint_scope: ``'image'``: each image checks its own constraint (paper Eq. 1);
            ``'batch'``: one batch-mean check for all (official code).
        mask_index: ``'step'``: mask ``t mod I`` (official); ``'count'``: an image's own PRO
            counter mod I, so cycles are never skipped (paper).
        mask_unit: ``'element'``: each channel value has its own mask (official);
            ``'pixel'``: the channels of a pixel are replaced together.
        co_every_step: CO at every step (official); False: CO only where the constraint is
            violated, PRO only where it holds (paper Alg. 1).
        clamp: ``'valid'``: the valid pixel range [0, 1]; ``'batch'``: the scalar min/max of the
            normalised batch (official), outputs are still clipped to [0, 1] when returned.
        quantize: optimise through, and measure on, the 8-bit rounded image (as stored).
        seed: seed of the local generator (noise and masks); None seeds from the OS. The
            generator advances across calls, so batches get different noise.
        target: ablations of the objective's target (paper Table 4): ``'noise'`` (PixelFade),
            ``'zeros'`` (0 in normalised space: the mean colour), ``'other'`` (another image of
            the batch, rolled by one: another identity when the batch holds several),
            ``'contrastive'`` (push away from the original: each value's farthest valid value).
        noise_weight: w of paper Table 3: the noise target becomes ``(1 - w) x + w eta``.
        replacement: ablations of the replacement strategy (paper Fig. 4): ``'replace'``
            (PRO writes the target), ``'perturb'`` (PRO adds ``perturb_amplitude * eta`` to the
            masked values instead), ``'l1'`` (no PRO; CO minimises
            ``d + l1_weight * mean|x_p - target|`` instead).
        perturb_amplitude: a of the ``'perturb'`` strategy (normalised units).
        l1_weight: w of the ``'l1'`` strategy.

    Shape:
        images ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]; any B, H, W, device.
    """

    def __init__(self, model: AuthorizedModel, steps: int = 100, warmup_steps: int = 5,
                 num_masks: int = 5, eps: float = 0.03, eps_mode: str = "absolute",
                 momentum: float = 0.6, beta: float = 0.01, beta_temp: float = 0.04,
                 no_replace_last: int = 5, loss_reduction: str = "mean",
                 constraint_scope: str = "image", mask_index: str = "step",
                 mask_unit: str = "element", co_every_step: bool = True, clamp: str = "valid",
                 quantize: bool = True, seed: int | None = None, target: str = "noise",
                 noise_weight: float = 1.0, replacement: str = "replace",
                 perturb_amplitude: float = 0.5, l1_weight: float = 1.0) -> None:
        if model is None:
            raise ValueError("PixelFade needs the authorised model")
        super().__init__(model, quantize=quantize)
        _check_choice("eps_mode", eps_mode, ("absolute", "relative"))
        _check_choice("loss_reduction", loss_reduction, ("mean", "sum"))
        _check_choice("constraint_scope", constraint_scope, ("image", "batch"))
        _check_choice("mask_index", mask_index, ("step", "count"))
        _check_choice("mask_unit", mask_unit, ("element", "pixel"))
        _check_choice("clamp", clamp, ("valid", "batch"))
        _check_choice("target", target, TARGETS)
        _check_choice("replacement", replacement, REPLACEMENTS)
        if steps < 1 or num_masks < 1 or warmup_steps < 0:
            raise ValueError(f"Need steps >= 1, num_masks >= 1, warmup_steps >= 0; got "
                             f"{steps}, {num_masks}, {warmup_steps}")
        self.steps, self.warmup_steps, self.num_masks = steps, warmup_steps, num_masks
        self.eps, self.eps_mode = float(eps), eps_mode
        self.momentum, self.beta, self.beta_temp = float(momentum), float(beta), float(beta_temp)
        self.no_replace_last = no_replace_last
        self.loss_reduction, self.constraint_scope = loss_reduction, constraint_scope
        self.mask_index, self.mask_unit = mask_index, mask_unit
        self.co_every_step, self.clamp = co_every_step, clamp
        self.seed = seed
        self.target, self.noise_weight = target, float(noise_weight)
        self.replacement, self.perturb_amplitude = replacement, float(perturb_amplitude)
        self.l1_weight = float(l1_weight)
        self._generators: dict[torch.device, torch.Generator] = {}

    def hparams(self) -> dict:
        names = ("steps", "warmup_steps", "num_masks", "eps", "eps_mode", "momentum", "beta",
                 "beta_temp", "no_replace_last", "loss_reduction", "constraint_scope",
                 "mask_index", "mask_unit", "co_every_step", "clamp", "quantize", "seed", "target",
                 "noise_weight", "replacement", "perturb_amplitude", "l1_weight")
        return {name: getattr(self, name) for name in names}

    # ------------------------------------------------------------------ helpers

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = make_generator(self.seed, device)
        return self._generators[device]

    def _features(self, z: torch.Tensor) -> torch.Tensor:
        """Features of ``z``; with ``quantize`` of its 8-bit rounded image, as stored, with a
        straight-through gradient (one addition in the autograd graph)."""
        if self.quantize:
            with torch.no_grad():
                offset = self.model.normalize(quantize_8bit(self.model.denormalize(z))) - z
            z = z + offset
        return self.model.forward_normalized(z)

    def _limits(self, reference: torch.Tensor) -> torch.Tensor:
        """Per-image bound on the distance, ``(B,)``."""
        if self.eps_mode == "absolute":
            return torch.full(reference.shape[:1], self.eps, device=reference.device)
        return self.eps * feature_distance(reference, torch.zeros_like(reference),
                                           self.loss_reduction)

    def _satisfied(self, distance: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
        if self.constraint_scope == "batch":
            return (distance.mean() < limits.mean()).expand_as(distance)
        return distance < limits

    def _target(self, z0: torch.Tensor, noise: torch.Tensor,
                bounds: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The values the replacement writes (normalised space), ``(B, C, H, W)``."""
        if self.target == "noise":
            return (1 - self.noise_weight) * z0 + self.noise_weight * noise
        if self.target == "zeros":
            return torch.zeros_like(z0)
        if self.target == "other":
            return z0.roll(1, dims=0)
        lo, hi = (bound.expand_as(z0) for bound in bounds)
        return torch.where(z0 - lo > hi - z0, lo, hi)  # contrastive: farthest valid value

    def _clamp_bounds(self, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.clamp == "batch":
            return z0.min().expand(1, 1, 1, 1), z0.max().expand(1, 1, 1, 1)
        zeros = torch.zeros(1, 3, 1, 1, device=z0.device, dtype=z0.dtype)
        return self.model.normalize(zeros), self.model.normalize(zeros + 1)

    # ------------------------------------------------------------------ one step

    def _replace(self, state: _State, target: torch.Tensor, noise: torch.Tensor,
                 mask_ids: torch.Tensor, t: int) -> None:
        active = state.satisfied | (t < self.warmup_steps)
        if self.replacement == "l1" or not active.any():
            return
        if self.mask_index == "step":
            index = torch.full_like(state.pro_count, t % self.num_masks)
        else:
            index = state.pro_count % self.num_masks
        values = target
        if self.replacement == "perturb":
            values = state.z + self.perturb_amplitude * noise
        state.z, written = replace_values(state.z, values, mask_ids, index, active)
        state.replaced |= written
        state.pro_count += active.long()

    def _constrain(self, state: _State, reference: torch.Tensor, limits: torch.Tensor,
                   bounds: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor,
                   t: int) -> None:
        z = state.z.detach().requires_grad_(True)
        distance = feature_distance(self._features(z), reference, self.loss_reduction)
        loss = distance.sum()
        if self.replacement == "l1":
            loss = loss + self.l1_weight * (z - target).abs().mean(dim=(1, 2, 3)).sum()
        grad, = torch.autograd.grad(loss, z)
        grad.div_(grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min_(1e-12))
        state.momentum.mul_(self.momentum).add_(grad)
        replace_allowed = t < self.steps - self.no_replace_last
        satisfied = self._satisfied(distance.detach(), limits) & replace_allowed
        step = torch.where(satisfied, self.beta, self.beta_temp).view(-1, 1, 1, 1)
        if not self.co_every_step and t >= self.warmup_steps:
            step = step * (~satisfied).view(-1, 1, 1, 1)
        state.z = z.detach().sub_(step * state.momentum).clamp_(bounds[0], bounds[1])
        state.satisfied = satisfied

    # ------------------------------------------------------------------ public

    def protect(self, images: torch.Tensor) -> ProtectionResult:
        """Protects ``(B, 3, H, W)`` pixel images in [0, 1]; returns images and diagnostics."""
        check_images(images)
        generator = self._generator(images.device)
        with torch.no_grad():
            reference = self.model(images)
        limits = self._limits(reference)
        z0 = self.model.normalize(images)
        noise = torch.randn(images.shape, generator=generator, device=images.device,
                            dtype=images.dtype)
        mask_ids = random_mask_ids(images.shape, self.num_masks, self.mask_unit, generator,
                                   images.device)
        bounds = self._clamp_bounds(z0)
        target = self._target(z0, noise, bounds)
        batch = images.shape[0]
        state = _State(z=z0.clone(), momentum=torch.zeros_like(z0),
                       satisfied=torch.zeros(batch, dtype=torch.bool, device=images.device),
                       replaced=torch.zeros_like(z0, dtype=torch.bool),
                       pro_count=torch.zeros(batch, dtype=torch.long, device=images.device))
        with torch.enable_grad():
            for t in range(self.steps):
                self._replace(state, target, noise, mask_ids, t)
                self._constrain(state, reference, limits, bounds, target, t)
        return self._result(state, reference, limits)

    @torch.no_grad()
    def _result(self, state: _State, reference: torch.Tensor,
                limits: torch.Tensor) -> ProtectionResult:
        protected = self.model.denormalize(state.z).clamp(0, 1)
        if self.quantize:
            protected = protected.mul(255).round().div(255)
        distance = feature_distance(self.model(protected), reference, self.loss_reduction)
        return ProtectionResult(images=protected, distance=distance,
                                constraint_met=distance <= limits,
                                replaced_fraction=state.replaced.float().mean(dim=(1, 2, 3)))


TARGETS = ("noise", "zeros", "other", "contrastive")
REPLACEMENTS = ("replace", "perturb", "l1")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; choose one of {choices}")
