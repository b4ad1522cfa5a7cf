"""AVIH (Su et al., ICCV 2023): Adversarial Visual Information Hiding, adapted to person Re-ID.

AVIH turns an image ``x`` into an "encrypted" image ``x_e`` that looks like noise to a person but
gives the authorised model the same feature. It optimises ``x_e`` directly, starting from noise:

    L(x_e) = L_f + c * L_vc (+ w_key * L_key)

* ``L_f = mean_d (f(x_e) - f(x))_d^2``: the per-dimension feature MSE (the same distance as
  PixelFade, :func:`feature_distance`);
* ``L_vc``: the variance-consistency loss, ``sum_c Var(box4x4_c(x_e))``: per colour channel, the
  unbiased variance of all 4x4 box sums (stride-1 valid convolution with an all-ones 4x4 kernel).
  It evens out local brightness, so no region of the noise image betrays the silhouette;
* ``L_key`` (optional): ``mean((clip(G_key(x_e), 0, 1) - x)^2)``, which lets the holder of a
  generative key model ``G_key`` recover the original.

Each iteration takes one forward and one backward pass to the input (the model is frozen), a
momentum step on the per-image mean-|g| normalised gradient and a clamp to [0, 1]; each image's
step size decays by ``decay`` whenever its loss has increased ``patience`` times.

Adaptations to Re-ID and to this package (all documented in :class:`AVIH`): ``x_e`` lives in
pixel space [0, 1]; losses, loss-increase counters and step sizes are per image (the official
code pools the batch), so an image's result does not depend on the batch it is protected in; the
key term is off by default, since no key model was released for Re-ID.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..models import AuthorizedModel, eval_mode
from .base import (ProtectionResult, Protector, check_images, feature_distance, make_generator,
                   register_protector)

_BOX = 4  # side of the box sums of the variance-consistency loss
INITS = ("random", "original")


def _straight_through_8bit(pixels: torch.Tensor) -> torch.Tensor:
    """Forward: the 8-bit rounded image, as stored; backward: identity."""
    return pixels + (pixels.clamp(0, 1).mul(255).round().div(255) - pixels).detach()


def _check_size(height: int, width: int) -> None:
    if height < _BOX or width < _BOX or (height - _BOX + 1) * (width - _BOX + 1) < 2:
        raise ValueError(f"AVIH's variance-consistency loss needs images with at least two "
                         f"{_BOX}x{_BOX} windows, got {height}x{width}")


def variance_consistency_loss(images: torch.Tensor) -> torch.Tensor:
    """AVIH's variance-consistency loss of each image, ``(B, C, H, W) -> (B,)``.

    For each channel, all 4x4 box sums (stride-1 valid convolution with an all-ones kernel) are
    taken, and their unbiased variance is computed; the per-channel variances are summed. The
    official code pools the whole batch into one variance per channel; here each image has its
    own, so images are independent of their batch. Zero for a constant image.

    Args:
        images: ``(B, C, H, W)`` float images (pixel values in [0, 1] for AVIH's scale),
            ``H, W >= 4`` and at least two 4x4 windows.

    Returns:
        ``(B,)`` non-negative losses, differentiable with respect to ``images``.

    Raises:
        ValueError: for images with fewer than two 4x4 windows.
    """
    if images.dim() != 4:
        raise ValueError(f"Expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    _check_size(*images.shape[-2:])
    channels = images.shape[1]
    kernel = images.new_ones(channels, 1, _BOX, _BOX)
    boxes = F.conv2d(images, kernel, groups=channels)  # (B, C, H - 3, W - 3)
    return boxes.flatten(2).var(dim=2, unbiased=True).sum(dim=1)


def _update_step_sizes(loss: torch.Tensor, previous: torch.Tensor | None, count: torch.Tensor,
                       step_size: torch.Tensor, iteration: int, patience: int,
                       decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """AVIH's adaptive step size, per image; returns the new ``(count, step_size)``.

    From iteration 2 on (``iteration > 1``, as in the official code), an image whose loss rose
    above its previous iteration's counts one increase; when its count reaches ``patience``, its
    step size is multiplied by ``decay`` and the count restarts from zero.
    """
    if iteration > 1 and previous is not None:
        count = count + (loss > previous).long()
    reached = count >= patience
    step_size = torch.where(reached, step_size * decay, step_size)
    count = torch.where(reached, torch.zeros_like(count), count)
    return count, step_size


@register_protector("avih")
class AVIH(Protector):
    """AVIH protector; ``AVIH(model, ...)(images)`` returns the encrypted (protected) images.

    Optimises ``x_e`` in pixel space, starting from noise, so that the authorised feature of
    ``x_e`` matches the original's while a variance-consistency term keeps ``x_e`` free of local
    brightness structure. Per iteration ``i = 0 .. steps - 1``::

        L   = L_f(x_e) + vc_weight * L_vc(x_e) [+ key_weight * L_key(x_e)]     (per image)
        g   = dL/dx_e / mean|dL/dx_e|                                          (per image)
        m   = momentum * m + g
        x_e = clamp(x_e - alpha * m, 0, 1)

    and ``alpha`` (per image, from ``step_size``) is multiplied by ``decay`` each time the image's
    loss has risen (compared with its previous iteration, counted from ``i = 2``) ``patience``
    times; the decay applies from the step of the iteration where the count is reached.

    Adaptation choices (relative to the official classification / face-recognition code):

    * **Pixel space**: ``x_e`` is optimised in [0, 1] pixels; the model normalises inside
      (:class:`AuthorizedModel`). ``init='random'`` draws N(0, 1) noise and clamps it to [0, 1].
    * **Per-image loss and step decay**: ``L_vc`` is a variance per image (the official code
      pools the batch), and loss-increase counters and step sizes are kept per image (the
      official code counts increases of the batch loss and decays one shared step size), so an
      image's result does not depend on the rest of its batch. The batch loss used for the
      gradient is the sum of the per-image losses, which keeps images independent.
    * **Key term off by default**: the generative key model of the paper (which lets a key holder
      recover the original) was not released for Re-ID; pass any image-to-image module as
      ``key_model`` to enable it.
    * **8-bit output**: with ``quantize`` the losses are evaluated on the 8-bit rounded image
      through a straight-through estimator (as in :class:`PixelFade`), and the rounded image is
      returned, so the feature distance holds for the stored image.

    Cost: one forward pass for the reference feature, then per iteration one forward and one
    backward pass to the input (model frozen), and one final forward for the distance of the
    returned images.

    Args:
        model: the authorised model (normalisation inside, see :class:`AuthorizedModel`).
        steps: N, number of iterations (>= 0; 100 as in PixelFade's comparison).
        step_size: initial step size alpha in pixel units.
        momentum: momentum factor of the normalised gradient.
        decay: factor applied to an image's step size when its patience runs out, in (0, 1].
        patience: number of loss increases that trigger a decay (>= 1).
        vc_weight: c, weight of the variance-consistency loss.
        init: ``'random'``: N(0, 1) noise clamped to [0, 1] (paper); ``'original'``: the image.
        key_model: optional image-to-image module ``G_key``, ``(B, 3, H, W) -> (B, 3, H, W)``
            pixels; run in eval mode, its output is clipped to [0, 1] and pulled to the original.
        key_weight: weight of the key term (used only with a ``key_model``).
        quantize: optimise through, and return, the 8-bit rounded image.
        seed: seed of the local generator of the initial noise; None seeds from the OS. The
            generator advances across calls, so batches get different noise.

    Shape:
        images ``(B, 3, H, W)`` in [0, 1] (at least two 4x4 windows) -> ``(B, 3, H, W)`` in
        [0, 1] on the same device; :meth:`protect` adds ``distance`` ``(B,)``, the feature MSE
        of the returned images (``constraint_met`` and ``replaced_fraction`` are None: AVIH has
        neither).

    Raises:
        ValueError: without a model or for invalid hyper-parameters.
    """

    def __init__(self, model: AuthorizedModel, steps: int = 100, step_size: float = 0.01,
                 momentum: float = 0.3, decay: float = 0.85, patience: int = 16,
                 vc_weight: float = 0.001, init: str = "random",
                 key_model: nn.Module | None = None, key_weight: float = 0.2,
                 quantize: bool = True, seed: int | None = None) -> None:
        if model is None:
            raise ValueError("AVIH needs the authorised model")
        if init not in INITS:
            raise ValueError(f"Unknown init {init!r}; choose one of {INITS}")
        if steps < 0 or patience < 1:
            raise ValueError(f"Need steps >= 0 and patience >= 1; got {steps}, {patience}")
        if step_size < 0 or not 0 < decay <= 1 or vc_weight < 0 or key_weight < 0:
            raise ValueError(f"Need step_size >= 0, 0 < decay <= 1, vc_weight >= 0, "
                             f"key_weight >= 0; got {step_size}, {decay}, {vc_weight}, "
                             f"{key_weight}")
        super().__init__(model, quantize=quantize)
        self.steps, self.patience = int(steps), int(patience)
        self.step_size, self.momentum, self.decay = float(step_size), float(momentum), float(decay)
        self.vc_weight, self.key_weight = float(vc_weight), float(key_weight)
        self.init, self.key_model, self.seed = init, key_model, seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def hparams(self) -> dict:
        names = ("steps", "step_size", "momentum", "decay", "patience", "vc_weight", "init",
                 "key_weight", "quantize", "seed")
        params = {name: getattr(self, name) for name in names}
        params["key_model"] = None if self.key_model is None else type(self.key_model).__name__
        return params

    # ------------------------------------------------------------------ helpers

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = make_generator(self.seed, device)
        return self._generators[device]

    def _initial(self, images: torch.Tensor) -> torch.Tensor:
        if self.init == "original":
            return images.clone()
        noise = torch.randn(images.shape, generator=self._generator(images.device),
                            device=images.device, dtype=images.dtype)
        return noise.clamp(0, 1)

    def _loss(self, encrypted: torch.Tensor, images: torch.Tensor,
              reference: torch.Tensor) -> torch.Tensor:
        """Per-image total loss ``(B,)`` of the current encrypted images (one model forward)."""
        pixels = _straight_through_8bit(encrypted) if self.quantize else encrypted
        loss = feature_distance(self.model(pixels), reference)
        if self.vc_weight:
            loss = loss + self.vc_weight * variance_consistency_loss(pixels)
        if self.key_model is not None and self.key_weight:
            with eval_mode(self.key_model):
                recovered = self.key_model(pixels).clamp(0, 1)
            loss = loss + self.key_weight * (recovered - images).pow(2).flatten(1).mean(dim=1)
        return loss

    # ------------------------------------------------------------------ public

    def protect(self, images: torch.Tensor) -> ProtectionResult:
        """Encrypts ``(B, 3, H, W)`` pixel images in [0, 1]; returns images and distances."""
        check_images(images)
        _check_size(*images.shape[-2:])
        with torch.no_grad():
            reference = self.model(images)
        encrypted = self._initial(images)
        momentum = torch.zeros_like(encrypted)
        batch = images.shape[0]
        step_size = torch.full((batch,), self.step_size, device=images.device,
                               dtype=images.dtype)
        count = torch.zeros(batch, dtype=torch.long, device=images.device)
        previous = None
        with torch.enable_grad():
            for i in range(self.steps):
                x = encrypted.detach().requires_grad_(True)
                loss = self._loss(x, images, reference)
                grad, = torch.autograd.grad(loss.sum(), x)
                loss = loss.detach()
                count, step_size = _update_step_sizes(loss, previous, count, step_size, i,
                                                      self.patience, self.decay)
                previous = loss
                grad = grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
                momentum = self.momentum * momentum + grad
                encrypted = (x.detach() - step_size.view(-1, 1, 1, 1) * momentum).clamp(0, 1)
        return self._result(encrypted, reference)

    @torch.no_grad()
    def _result(self, encrypted: torch.Tensor, reference: torch.Tensor) -> ProtectionResult:
        protected = encrypted.detach().clamp(0, 1)
        if self.quantize:
            protected = protected.mul(255).round().div(255)
        distance = feature_distance(self.model(protected), reference)
        return ProtectionResult(images=protected, distance=distance)
