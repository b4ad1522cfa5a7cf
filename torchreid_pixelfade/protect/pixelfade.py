"""PixelFade (Zhang et al., ACM MM 2024): noise-guided protection by Progressive Pixel Fading.

Objective (Eq. 1): make the protected image ``x_p`` as close as possible to a fixed noise image
``eta`` while the authorised feature stays close, ``d(f(x_p), f(x)) <= eps``. Each step:

1. Partial Replacement (PRO): images whose constraint held at the previous step (and every image
   during warm-up) write ``eta`` into their next mask of a disjoint set of ``I`` masks (drawn
   covering, or supplied to :meth:`PixelFade.protect`); before step 0 the "previous" check is
   that of the untouched image, ``d = 0 <= eps``;
2. one forward and one backward pass to the input give ``grad`` of the per-image distances'
   sum (``constraint_scope='image'``; each image's own gradient) or batch mean ('batch',
   official);
3. Constraint Operation (CO): momentum over the per-image mean-|g| normalised gradient, a step of
   ``beta`` where the constraint holds and ``beta_temp`` where it does not, then the clamp.

``step_control='adaptive'`` (default) makes the constraint hold without per-model step sizes:
each image's step is ``beta`` or ``beta_temp`` times its own scale (Rprop's rule: halved after a
CO step that raised its distance, x1.2 up to 1 after one that lowered it), and the final phase
without replacement stops each image as soon as its stored 8-bit version meets eps, running up
to ``extra_steps`` past ``T`` for those that have not; an image that still misses starts again
from new noise and masks, up to ``retries`` times, and keeps its closest result
(``docs/RESULTS.md`` sections 13 and 16). ``'fixed'`` is the paper's and official loop,
unchanged.

All arithmetic happens in the model's normalised space, as in the official code, so ``eta`` is
N(0, 1) there (N(mean_c, std_c^2) in pixels) and ``beta`` = 0.01 keeps its meaning. Every switch
between the paper and the official code is a field of :class:`PixelFadeParams`; see
``algorithms.md`` 1.3. The ablations (paper Tables 3-4, Fig. 4) live in :mod:`.ablations`.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import torch

from .ablations import REPLACEMENTS, TARGETS
from .base import ProtectionResult, Protector, check_keys, register_protector
from .functional import (Generators, draw_normal, feature_distance, normalized_momentum,
                         quantize_ste, select_generators, within)
from .masks import MASK_UNITS, mask_ids_from_masks, random_mask_ids, replace_values
from .params import HyperParameters, check_choice, hparam, hyperparameters

Bounds = tuple[torch.Tensor, torch.Tensor]

logger = logging.getLogger(__name__)

#: factors of the adaptive step scale: Rprop's textbook values (Riedmiller and Braun, 1993),
#: used as they are, not tuned on any model
STEP_SHRINK = 0.5
STEP_GROW = 1.2


@hyperparameters
class PixelFadeParams(HyperParameters):
    """Hyper-parameters of :class:`PixelFade` (paper 4.1.4 with the official code's behaviour).

    Five kinds: the paper's (``steps`` .. ``no_replace_last``), paper-vs-official switches
    (``loss_reduction`` .. ``clamp``), the step control that makes the constraint hold
    (``step_control``, ``extra_steps``, ``retries``), runtime settings (``quantize``,
    ``seed``) and the ablations of paper Tables 3-4 and Fig. 4 (``target`` .. ``l1_weight``).
    """

    steps: int = hparam(100, "T, total optimisation steps (>= 1).")
    warmup_steps: int = hparam(5, "steps that replace whatever the constraint says (one cycle "
                                  "when = num_masks; >= 0). Step 0 follows the untouched "
                                  "image's check d = 0 <= eps, which always holds (eps >= 0), "
                                  "so with 0 step 0 still replaces, as the official loop (its "
                                  "constraint flag starts true) and paper Alg. 1 "
                                  "(L_f(x) = 0 < eps) do.")
    num_masks: int = hparam(5, "I, number of disjoint masks (>= 1).")
    eps: float = hparam(0.03, "constraint bound on the feature distance (>= 0; inf: always "
                        "met).")
    eps_mode: str = hparam("absolute", "'absolute': eps bounds the distance itself (paper, "
                           "official); 'relative': eps is a fraction of the original feature's "
                           "mean square (mean(f(x)^2), or its sum for loss_reduction='sum'), "
                           "one value for any backbone.")
    momentum: float = hparam(0.6, "alpha, momentum of the normalised gradient, in [0, 1).")
    beta: float = hparam(0.01, "CO step size where the constraint holds (normalised units; "
                         ">= 0).")
    beta_temp: float = hparam(0.04, "CO step size where it does not (official code; set = beta "
                              "for the paper; >= 0).")
    no_replace_last: int = hparam(5, "no replacement in the last steps (official rule: the "
                                  "constraint state is forced to 'violated' from step "
                                  "T - no_replace_last on; >= 0).")
    loss_reduction: str = hparam("mean", "'mean' over feature dimensions (MSE, official) or "
                                 "'sum' (the paper's squared L2 distance). Either way the "
                                 "gradient is that of the sum of the per-image distances "
                                 "with constraint_scope='image' (no 1/B, whose rounding would "
                                 "depend on the batch size) and of their batch mean with "
                                 "'batch' (official code); it is normalised per image, so "
                                 "both step alike.")
    constraint_scope: str = hparam("image", "'image': each image checks its own constraint "
                                   "(paper Eq. 1); 'batch': one batch-mean check for all "
                                   "(official code).")
    mask_index: str = hparam("step", "'step': mask t mod I (official); 'count': an image's own "
                             "PRO counter mod I, so cycles are never skipped (paper).")
    mask_unit: str = hparam("element", "'element': each channel value has its own mask "
                            "(official); 'pixel': the channels of a pixel are replaced "
                            "together.")
    co_every_step: bool = hparam(True, "CO at every step (official); False: CO only where the "
                                 "constraint is violated, PRO only where it holds (paper "
                                 "Alg. 1).")
    clamp: str = hparam("valid", "'valid': the valid pixel range [0, 1] per channel "
                        "(default: every value stays a colour that can be stored); 'batch': "
                        "the scalar min/max of the normalised batch (official; lets values "
                        "leave [0, 1] and couples an image to its batch); outputs are still "
                        "clipped to [0, 1] when returned.")
    step_control: str = hparam("adaptive", "'adaptive': each image's CO step is beta or "
                               "beta_temp times its own scale in (0, 1], halved after a CO "
                               "step that raised its distance and x1.2 (up to 1) after one "
                               "that lowered it (steps that replaced are not judged); from "
                               "step T - no_replace_last on, an image stops as soon as its "
                               "stored version meets eps (measured on the 8-bit image with "
                               "quantize), one that has not by T continues up to "
                               "extra_steps more, and one that never does starts again "
                               "(retries) or returns its closest measured state. 'fixed': "
                               "the paper's and official loop, T steps of constant beta / "
                               "beta_temp. "
                               "constraint_scope='batch' always runs 'fixed' (its one check "
                               "per batch cannot stop images one by one).")
    extra_steps: int = hparam(40, "'adaptive' only: the most CO steps past T for an image "
                              "whose stored version still misses eps (>= 0); an attempt "
                              "costs at most (T + extra_steps) / T forward and backward "
                              "passes per image of the fixed loop's.")
    retries: int = hparam(0, "'adaptive' only: how many times an image whose stored version "
                          "still misses eps after T + extra_steps starts again from new noise "
                          "and masks (drawn on from its generator; >= 0); of its attempts "
                          "the one with the smallest measured distance is kept. Only images "
                          "that missed pay for it: a batch costs at most (1 + retries) "
                          "(T + extra_steps) / T passes per image of the fixed loop's, but "
                          "a retry runs as a batch of the few images that missed, which a "
                          "CPU computes far less efficiently per image (the image demo: 1.07x "
                          "the passes, 1.5x the seconds), hence 0 by default and 1 in the "
                          "visible-infrared configs. None with target 'other' or clamp "
                          "'batch' (a retry's batch is the images that missed) or with noise "
                          "or masks supplied.")
    quantize: bool = hparam(True, "optimise through, and measure on, the 8-bit rounded image "
                            "(as stored; default, so the constraint holds for the saved "
                            "image). False: float values throughout, as the official code.")
    seed: int | None = hparam(None, "run seed of the noise and masks; None: a random one, "
                              "recorded nowhere. Without keys one local generator advances "
                              "across calls, so batches get different noise; with keys (as "
                              "the store passes) each image's draws come from a generator "
                              "seeded by (seed, its key), the same in any batch or process.")
    target: str = hparam("noise", "objective's target (paper Table 4): 'noise' (PixelFade), "
                         "'zeros' (the mean colour), 'other' (another image of the batch), "
                         "'contrastive' (each value's farthest valid value).")
    noise_weight: float = hparam(1.0, "w of paper Table 3: the noise target becomes "
                                 "(1 - w) x + w eta; in [0, 1].")
    replacement: str = hparam("replace", "replacement strategy (paper Fig. 4): 'replace' (PRO "
                              "writes the target), 'perturb' (PRO adds perturb_amplitude * eta "
                              "to the masked values), 'l1' (no PRO; CO minimises "
                              "d + l1_weight * mean|x_p - target|).")
    perturb_amplitude: float = hparam(0.5, "a of the 'perturb' strategy (normalised units; "
                                      ">= 0).")
    l1_weight: float = hparam(1.0, "w of the 'l1' strategy (>= 0).")

    def _validate(self) -> None:
        check_choice("eps_mode", self.eps_mode, ("absolute", "relative"))
        check_choice("loss_reduction", self.loss_reduction, ("mean", "sum"))
        check_choice("constraint_scope", self.constraint_scope, ("image", "batch"))
        check_choice("mask_index", self.mask_index, ("step", "count"))
        check_choice("mask_unit", self.mask_unit, MASK_UNITS)
        check_choice("clamp", self.clamp, ("valid", "batch"))
        check_choice("step_control", self.step_control, ("adaptive", "fixed"))
        check_choice("target", self.target, tuple(TARGETS))
        check_choice("replacement", self.replacement, tuple(REPLACEMENTS))
        for name, low in (("steps", 1), ("num_masks", 1), ("warmup_steps", 0),
                          ("no_replace_last", 0), ("extra_steps", 0), ("retries", 0),
                          ("eps", 0), ("beta", 0), ("beta_temp", 0), ("perturb_amplitude", 0),
                          ("l1_weight", 0)):
            self._check_range(name, low)
        self._check_range("momentum", 0, 1, high_open=True)
        self._check_range("noise_weight", 0, 1)


@dataclasses.dataclass
class PixelFadeResult(ProtectionResult):
    """:class:`ProtectionResult` with the cost of each image.

    Attributes:
        steps: ``(B,)`` long, forward and backward passes the image used: ``T`` with
            ``step_control='fixed'``; with ``'adaptive'`` those before the final phase
            (``T - no_replace_last``, or the warm-up if longer) plus those of its final phase,
            at most ``T + extra_steps`` per attempt, so at most
            ``(1 + retries) (T + extra_steps)`` in all.
    """

    steps: torch.Tensor | None = None


@dataclasses.dataclass
class _State:
    """Per-batch optimisation state."""

    z: torch.Tensor  # (B, C, H, W) current protected images, normalised space
    momentum: torch.Tensor  # (B, C, H, W)
    satisfied: torch.Tensor  # (B,) constraint held at the previous step
    replaced: torch.Tensor  # (B, C, H, W) bool, replaced at least once
    pro_count: torch.Tensor  # (B,) number of PROs done
    just_replaced: torch.Tensor  # (B,) bool, replaced at this step
    scale: torch.Tensor  # (B,) adaptive step scale in (0, 1]
    previous: torch.Tensor  # (B,) objective measured at the previous step (inf before any)

    @classmethod
    def start(cls, z0: torch.Tensor, satisfied: torch.Tensor) -> _State:
        batch, device = z0.shape[0], z0.device
        return cls(z=z0.clone(), momentum=torch.zeros_like(z0), satisfied=satisfied.clone(),
                   replaced=torch.zeros_like(z0, dtype=torch.bool),
                   pro_count=torch.zeros(batch, dtype=torch.long, device=device),
                   just_replaced=torch.zeros(batch, dtype=torch.bool, device=device),
                   scale=torch.ones(batch, dtype=z0.dtype, device=device),
                   previous=torch.full((batch,), float("inf"), dtype=z0.dtype, device=device))


@register_protector("pixelfade")
class PixelFade(Protector):
    """PixelFade protector; ``PixelFade(model, **params)(images)`` returns protected images.

    Args:
        model: the authorised model (normalisation inside, see :class:`AuthorizedModel`).
        **params: fields of :class:`PixelFadeParams`, e.g. ``steps=100, eps=0.03, seed=0``.

    Shape:
        images ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)`` in [0, 1]; any B, H, W, device.
        :meth:`protect` adds ``distance``, ``constraint_met`` and ``replaced_fraction``, all
        ``(B,)``, measured on the returned (stored) images, and ``steps`` ``(B,)``, the passes
        each image used (:class:`PixelFadeResult`).

    The constraint: with ``step_control='adaptive'`` (default) and ``quantize``, an image is
    returned as soon as its 8-bit version measured ``d <= eps`` in the final phase, so
    ``constraint_met`` is False only for an image that missed eps for ``T + extra_steps``
    steps in each of its ``1 + retries`` attempts (then returned in its closest measured
    state), or, rarely, where the final check's batch computes a feature differently in its
    last bits than the phase's smaller batch.

    The official configuration (``algorithms.md`` 1.2) is ``constraint_scope='batch',
    clamp='batch', quantize=False`` with the other defaults (``loss_reduction='mean'``,
    ``mask_index='step'``, ``mask_unit='element'``, ``co_every_step=True``, ``beta_temp=0.04``,
    ``warmup_steps=5``, ``no_replace_last=5``) and the official masks (one draw over the
    flattened batch, per element) passed as ``masks=``; ``tests/protect/test_official_reference``
    checks it against an independent port of the official loop, bit for bit.

    Batch independence: with ``keys`` and a ``seed`` (as the store runs it), and
    ``constraint_scope='image'``, ``clamp='valid'`` and a ``target`` other than ``'other'``, an
    image's draws and every operation of the loop are its own, so its result does not depend
    on the contents or order of its batch, on the process or on the run: byte-identical for
    the same batch size and device type. Across batch sizes it is byte-identical only as far
    as the model's kernels compute an image alike at every batch size, which CPU backbones do
    not promise (oneDNN picks convolution kernels, BLAS matmul kernels, by batch size; a last
    bit of a feature that differs then grows, through the 8-bit rounding and the constraint's
    switches, into differences of many 8-bit levels on some pixels). The adaptive final phase
    computes only the images still running, and a retry only the images that missed, whose
    numbers depend on the batch, so there the same caveat holds within one batch size too.
    ``'batch'`` scope and clamp and the ``'other'`` target couple an image to its batch by
    definition (and get no retries). Without keys, the protector's one generator advances
    across calls by the draws made, retries included, so a batch's noise also depends on how
    many images of the earlier batches were retried.

    Raises:
        ValueError: without a model or for invalid hyper-parameters.
    """

    Params = PixelFadeParams
    requires_model = True

    def protect(self, images: torch.Tensor, keys: Sequence[str] | None = None, *,
                noise: torch.Tensor | None = None,
                masks: torch.Tensor | None = None) -> ProtectionResult:
        """Protects a batch; the random draws can be supplied to compare runs under equal draws.

        Without ``noise`` and ``masks`` the noise, then the masks (``mask_unit``; each image an
        exactly balanced partition) are drawn: from the protector's generator, or with
        ``keys`` from each image's own generator (its noise, then its masks). A supplied
        tensor replaces its draw, which is then not made (the generator does not advance for
        it); supplied draws turn ``retries`` off, so that runs under equal draws compare.

        Args:
            images: ``(B, 3, H, W)`` pixels in [0, 1].
            keys: optional stable key of each image (``B`` strings): each image's draws then
                come from a generator seeded by (run seed, key) (see :class:`Protector`). With
                ``constraint_scope='image'``, ``clamp='valid'`` and a target other than
                ``'other'``, an image's result then does not depend on its batch either.
            noise: optional ``(B, 3, H, W)`` float noise ``eta`` in the model's normalised
                space (N(0, 1) there for PixelFade); moved to the images' device and dtype.
            masks: optional ``(num_masks, B, 3, H, W)`` bool; ``masks[j]`` marks the values
                the j-th replacement writes (``mask_index`` picks j). Must be disjoint; the
                union need not cover every value: uncovered values are never replaced (as the
                ``N mod I`` leftover of the official masks, drawn once over the flattened
                batch). ``mask_unit`` is then ignored.

        Returns:
            the protected images with their diagnostics (see the class docstring).

        Raises:
            TypeError: for ``noise`` or ``masks`` that is not a tensor, or ``keys`` that are
                not strings.
            ValueError: for invalid images, or ``noise``/``masks`` of the wrong shape or dtype,
                or overlapping masks, or not one key per image.
        """
        self._check(images)
        keys = check_keys(keys, len(images))
        noise = _checked_noise(noise, images)
        mask_ids = None
        if masks is not None:
            mask_ids = mask_ids_from_masks(masks, images.shape, self.params.num_masks)
            mask_ids = mask_ids.to(images.device)
        if not len(images):
            return self._empty_result(images)
        reference = self._reference(images)
        generator = self._generators_for(images.device, keys)
        return self.finish(self._fade(images, reference, generator, noise, mask_ids), reference)

    def _protect_with(self, images: torch.Tensor, reference: torch.Tensor,
                      generator: Generators) -> PixelFadeResult:
        return self._fade(images, reference, generator)

    def finish(self, draft: ProtectionResult | torch.Tensor,
               reference: torch.Tensor | None) -> PixelFadeResult:
        """That of the base class, keeping the draft's ``steps``."""
        return _with_steps(super().finish(draft, reference), getattr(draft, "steps", None))

    def _empty_result(self, images: torch.Tensor) -> PixelFadeResult:
        """That of the base class, with empty ``replaced_fraction`` (float32, as always) and
        ``steps``."""
        result = super()._empty_result(images)
        result.replaced_fraction = torch.zeros(0, device=images.device)
        return _with_steps(result, torch.zeros(0, dtype=torch.long, device=images.device))

    def _fade(self, images: torch.Tensor, reference: torch.Tensor, generator: Generators,
              noise: torch.Tensor | None = None,
              mask_ids: torch.Tensor | None = None) -> PixelFadeResult:
        """The optimisation, with the adaptive control's retries of the images that missed
        (:meth:`_retries`; none when ``noise`` or ``mask_ids`` is supplied, so that runs
        under equal draws stay comparable); ``noise`` ``(B, 3, H, W)`` and ``mask_ids`` are
        drawn from ``generator`` (one, or one per image) when None, and for a retry."""
        attempt = self._attempt(images, reference, generator, noise, mask_ids)
        supplied = noise is not None or mask_ids is not None
        for _ in range(0 if supplied else self._retries()):
            missed = attempt.to_retry()
            if not len(missed):
                break
            logger.debug("retrying %d of %d images from new draws", len(missed), len(images))
            attempt.merge(missed, self._attempt(images[missed], reference[missed],
                                                select_generators(generator, missed)))
        return PixelFadeResult(images=self.model.denormalize(attempt.z),
                               replaced_fraction=attempt.replaced_fraction, steps=attempt.steps)

    def _attempt(self, images: torch.Tensor, reference: torch.Tensor, generator: Generators,
                 noise: torch.Tensor | None = None,
                 mask_ids: torch.Tensor | None = None) -> _Attempt:
        """One run of the loop from the draws (see :meth:`_fade`)."""
        p = self.params
        noise, mask_ids = self._draws(images, generator, noise, mask_ids)
        limits = self._limits(reference)
        z0 = self.model.normalize(images)
        bounds = self._clamp_bounds(z0)
        target = TARGETS[p.target](z0, noise, bounds, p.noise_weight)
        # the untouched image meets d = 0 <= eps (official: the constraint flag starts true)
        state = _State.start(z0, self._satisfied(torch.zeros_like(limits), limits))
        adaptive = self._adaptive()
        replacing = self._final_phase_start() if adaptive else p.steps
        with torch.enable_grad():
            for t in range(replacing):
                self._replace(state, target, noise, mask_ids, t)
                self._constrain(state, reference, limits, bounds, target, t, adaptive)
            phase = (self._settle(state, reference, limits, bounds, target, noise, mask_ids)
                     if adaptive else None)
        replaced_fraction = state.replaced.float().mean(dim=(1, 2, 3))
        steps = torch.full_like(state.pro_count, replacing)
        if phase is None:
            return _Attempt(state.z, replaced_fraction, steps)
        return _Attempt(state.z, replaced_fraction, steps + phase.steps, phase.distance,
                        phase.running)

    def _draws(self, images: torch.Tensor, generator: Generators, noise: torch.Tensor | None,
               mask_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The missing draws, noise first, from ``generator`` (one, or one per image)."""
        if noise is None:
            noise = draw_normal(images.shape, generator, images.device, images.dtype)
        if mask_ids is None:
            mask_ids = random_mask_ids(images.shape, self.params.num_masks,
                                       self.params.mask_unit, generator, images.device)
        return noise, mask_ids

    def _limits(self, reference: torch.Tensor) -> torch.Tensor:
        """Per-image bound on the distance, ``(B,)``."""
        p = self.params
        if p.eps_mode == "absolute":
            return torch.full(reference.shape[:1], p.eps, device=reference.device)
        return p.eps * feature_distance(reference, torch.zeros_like(reference), p.loss_reduction)

    # ------------------------------------------------------------------ one step

    def _replace(self, state: _State, target: torch.Tensor, noise: torch.Tensor,
                 mask_ids: torch.Tensor, t: int) -> None:
        """PRO: active images write their strategy's values into their current mask."""
        p = self.params
        write = REPLACEMENTS[p.replacement].write
        active = state.satisfied | (t < p.warmup_steps)
        state.just_replaced = active & (write is not None)
        if write is None or not active.any():
            return
        if p.mask_index == "step":
            index = torch.full_like(state.pro_count, t % p.num_masks)
        else:
            index = state.pro_count % p.num_masks
        values = write(state.z, target, noise, p.perturb_amplitude)
        state.z, written = replace_values(state.z, values, mask_ids, index, active)
        state.replaced |= written
        state.pro_count += active.long()

    def _constrain(self, state: _State, reference: torch.Tensor, limits: torch.Tensor,
                   bounds: Bounds, target: torch.Tensor, t: int, adaptive: bool = False) -> None:
        """CO: one forward and backward pass, a momentum step (times the adaptive scale when
        ``adaptive``), the clamp."""
        p = self.params
        z = state.z.detach().requires_grad_(True)
        distance, grad = self._gradient(z, reference, target)
        state.momentum = normalized_momentum(state.momentum, grad, p.momentum)
        replace_allowed = t < p.steps - p.no_replace_last
        satisfied = self._satisfied(distance, limits) & replace_allowed
        step = torch.where(satisfied, p.beta, p.beta_temp).view(-1, 1, 1, 1)
        if not p.co_every_step and t >= p.warmup_steps:
            step = step * (~satisfied).view(-1, 1, 1, 1)
        if adaptive:
            objective = self._objective(z, distance, target)
            step = step * self._rescale(state, objective).view(-1, 1, 1, 1)
        state.z = z.detach().sub_(step * state.momentum).clamp_(bounds[0], bounds[1])
        state.satisfied = satisfied

    def _gradient(self, z: torch.Tensor, reference: torch.Tensor,
                  target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distance (B,), grad (B, C, H, W))``: one forward and backward pass at ``z``
        (normalised, requiring grad) of the strategy's loss."""
        p = self.params
        distance = feature_distance(self._features(z), reference, p.loss_reduction)
        reduce = self._batch_reduction()
        loss = reduce(distance) + REPLACEMENTS[p.replacement].penalty(z, target, p.l1_weight,
                                                                      reduce)
        grad, = torch.autograd.grad(loss, z)
        return distance.detach(), grad

    def _objective(self, z: torch.Tensor, distance: torch.Tensor,
                   target: torch.Tensor) -> torch.Tensor:
        """``(B,)`` each image's value of the loss its CO step descends: the distance, plus
        the strategy's penalty (``'l1'``); what the adaptive step scale judges."""
        p = self.params
        penalty = REPLACEMENTS[p.replacement].penalty(z.detach(), target, p.l1_weight,
                                                      lambda values: values)
        return distance + penalty

    @staticmethod
    def _rescale(state: _State, objective: torch.Tensor,
                 index: torch.Tensor | None = None) -> torch.Tensor:
        """Updates the adaptive step scale of the images ``index`` (all when None) from their
        objective ``(n,)`` now (:meth:`_objective`); returns their new scales ``(n,)`` in
        (0, 1].

        The previous CO step is judged by what it did to the objective: raised (it overshot):
        scale x ``STEP_SHRINK``; lowered or kept: x ``STEP_GROW``, at most 1. A step that
        replaced values is not judged (replacement raises the distance by design), nor the
        first.
        """
        index = slice(None) if index is None else index
        previous, scale = state.previous[index], state.scale[index]
        judged = ~state.just_replaced[index] & torch.isfinite(previous)
        factor = torch.where(objective > previous, STEP_SHRINK, STEP_GROW)
        scale = torch.where(judged, (scale * factor).clamp_max(1.0), scale)
        state.scale[index], state.previous[index] = scale, objective.to(previous.dtype)
        return scale

    def _settle(self, state: _State, reference: torch.Tensor, limits: torch.Tensor,
                bounds: Bounds, target: torch.Tensor, noise: torch.Tensor,
                mask_ids: torch.Tensor) -> _FinalPhase:
        """The adaptive final phase, from step :meth:`_final_phase_start` to at most
        ``T + extra_steps``; returns each image's closest measured state with the passes it
        used and whether it missed its limit.

        Its first step replaces where the official rule still does (the constraint held at
        the step before); then, each step, the images still running are measured (on the
        8-bit image with ``quantize``): those within their limit stop there, as they are, the
        others take a CO step. An image that never meets its limit gets its closest measured
        state. Only the running images are computed, so the cost follows them.
        """
        p = self.params
        first = self._final_phase_start()
        state.just_replaced.zero_()
        if first < p.steps:
            self._replace(state, target, noise, mask_ids, first)
        phase = _FinalPhase.start(state.z)
        for _ in range(first, p.steps + p.extra_steps):
            index = phase.running.nonzero().squeeze(1)
            if not len(index):
                break
            phase.steps[index] += 1
            met = self._settle_step(state, index, reference[index], limits[index], bounds,
                                    target[index], phase)
            phase.running[index[met]] = False
        state.z[phase.running] = phase.z[phase.running]
        logger.debug("adaptive final phase: %d of %d images met eps, %d missed it after %d "
                     "steps", int((~phase.running).sum()), len(phase.running),
                     int(phase.running.sum()), p.steps + p.extra_steps)
        return phase

    def _settle_step(self, state: _State, index: torch.Tensor, reference: torch.Tensor,
                     limits: torch.Tensor, bounds: Bounds, target: torch.Tensor,
                     phase: _FinalPhase) -> torch.Tensor:
        """One step of the final phase on images ``index``; returns which met their limit
        ``(n,)`` bool (those are left as they are)."""
        p = self.params
        z = state.z[index].detach().requires_grad_(True)
        distance, grad = self._gradient(z, reference, target)
        phase.keep_closer(index, z.detach(), distance)
        met = within(distance, limits)
        momentum = normalized_momentum(state.momentum[index], grad, p.momentum)
        scale = self._rescale(state, self._objective(z, distance, target), index)
        step = (p.beta_temp * scale * ~met).view(-1, 1, 1, 1)
        state.momentum[index] = momentum
        state.z[index] = z.detach().sub_(step * momentum).clamp_(bounds[0], bounds[1])
        state.just_replaced[index] = False
        return met

    # ------------------------------------------------------------------ helpers

    def _features(self, z: torch.Tensor) -> torch.Tensor:
        """Features ``(B, D)`` of normalised ``z``.

        With ``quantize``, those of its 8-bit rounded image (as stored), with a straight-through
        gradient.
        """
        if self.params.quantize:
            z = quantize_ste(z, self.model.denormalize, self.model.normalize)
        return self.model.forward_normalized(z)

    def _batch_reduction(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """How the per-image losses become the one differentiated: their sum per image scope,
        their mean (official) per batch scope.

        The gradient is normalised per image, so both give the same steps up to rounding; but
        the mean's 1/B rounds differently for each B that is not a power of two, which would
        make an image's result depend on its batch size. The sum's gradient is each image's
        own.
        """
        return torch.mean if self.params.constraint_scope == "batch" else torch.sum

    def _final_phase_start(self) -> int:
        """First step of the adaptive final phase: ``T - no_replace_last``, not before the
        warm-up has ended (its replacements are unconditional), at most ``T``."""
        p = self.params
        return min(p.steps, max(p.steps - p.no_replace_last, p.warmup_steps))

    def _retries(self) -> int:
        """How many retries the images that missed get: ``retries`` with the adaptive
        control, none where an image's result depends on its batch (``target='other'``,
        ``clamp='batch'``), since a retry's batch is the images that missed."""
        p = self.params
        coupled = p.target == "other" or p.clamp == "batch"
        return p.retries if self._adaptive() and not coupled else 0

    def _adaptive(self) -> bool:
        """Whether the adaptive step control runs (it needs per-image constraint checks)."""
        p = self.params
        return p.step_control == "adaptive" and p.constraint_scope == "image"

    def _satisfied(self, distance: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
        """``(B,)`` constraint state, per image or one batch-mean check for all."""
        if self.params.constraint_scope == "batch":
            return within(distance.mean(), limits.mean()).expand_as(distance)
        return within(distance, limits)

    def _clamp_bounds(self, z0: torch.Tensor) -> Bounds:
        """``(low, high)`` of the clamp in normalised space, broadcastable to ``z0``."""
        if self.params.clamp == "batch":
            return z0.min().expand(1, 1, 1, 1), z0.max().expand(1, 1, 1, 1)
        zeros = torch.zeros(1, 3, 1, 1, device=z0.device, dtype=z0.dtype)
        return self.model.normalize(zeros), self.model.normalize(zeros + 1)


def _with_steps(result: ProtectionResult, steps: torch.Tensor | None) -> PixelFadeResult:
    """``result`` as a :class:`PixelFadeResult` with ``steps``."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return PixelFadeResult(**fields, steps=steps)


@dataclasses.dataclass
class _FinalPhase:
    """Per image, during the adaptive final phase: its closest measured state (the state with
    the smallest measured distance; inf before any), the passes it used and whether it is
    still running (has not met its limit)."""

    z: torch.Tensor  # (B, C, H, W) normalised
    distance: torch.Tensor  # (B,)
    steps: torch.Tensor  # (B,) long
    running: torch.Tensor  # (B,) bool

    @classmethod
    def start(cls, z: torch.Tensor) -> _FinalPhase:
        batch, device = z.shape[0], z.device
        return cls(z.clone(), torch.full((batch,), float("inf"), device=device),
                   torch.zeros(batch, dtype=torch.long, device=device),
                   torch.ones(batch, dtype=torch.bool, device=device))

    def keep_closer(self, index: torch.Tensor, z: torch.Tensor, distance: torch.Tensor) -> None:
        """Keeps ``z`` ``(n, C, H, W)`` of images ``index`` ``(n,)`` where ``distance``
        ``(n,)`` is smaller than their closest so far."""
        closer = distance < self.distance[index]
        self.distance[index[closer]] = distance[closer].to(self.distance.dtype)
        self.z[index[closer]] = z[closer]


@dataclasses.dataclass
class _Attempt:
    """One run of the loop over a batch: the images it returns (normalised) ``(B, C, H, W)``,
    their replaced fraction and passes ``(B,)``; with the adaptive control also the measured
    distance of each returned image and whether it missed its limit ``(B,)`` (inf and True
    for an image the final phase never measured, as with ``extra_steps = 0`` and no final
    step before ``T``)."""

    z: torch.Tensor
    replaced_fraction: torch.Tensor
    steps: torch.Tensor
    distance: torch.Tensor | None = None
    missed: torch.Tensor | None = None

    def to_retry(self) -> torch.Tensor:
        """``(n,)`` indices of the images that missed their limit after a measurement (an
        attempt of the adaptive control, whose ``missed`` and ``distance`` are set)."""
        return (self.missed & torch.isfinite(self.distance)).nonzero().squeeze(1)

    def merge(self, index: torch.Tensor, retry: _Attempt) -> None:
        """Adds ``retry``, an attempt at the images ``index`` ``(n,)`` only (its fields
        ``(n, ...)``): each of them pays the retry's passes and keeps the closer of its two
        results, with that result's distance and missed flag."""
        self.steps[index] += retry.steps
        closer = retry.distance < self.distance[index]
        chosen = index[closer]
        self.z[chosen] = retry.z[closer]
        self.replaced_fraction[chosen] = retry.replaced_fraction[closer]
        self.distance[chosen] = retry.distance[closer]
        self.missed[chosen] = retry.missed[closer]


def _checked_noise(noise: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor | None:
    """Validates caller-supplied noise; returns it on the images' device and dtype (or None).

    Raises:
        TypeError: for a non-tensor.
        ValueError: for a non-float dtype or a shape other than the images'.
    """
    if noise is None:
        return None
    if not isinstance(noise, torch.Tensor):
        raise TypeError(f"noise must be a float tensor, got {type(noise).__name__}")
    if not noise.is_floating_point():
        raise ValueError(f"noise must be a float tensor, got dtype {noise.dtype}")
    if noise.shape != images.shape:
        raise ValueError(f"noise must have the images' shape {tuple(images.shape)}, got "
                         f"{tuple(noise.shape)}")
    return noise.to(device=images.device, dtype=images.dtype)
