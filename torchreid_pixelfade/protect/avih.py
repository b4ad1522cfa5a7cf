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

from ..models import AuthorizedModel, eval_mode
from .base import ProtectionResult, Protector, register_protector
from .functional import (Generators, check_images, draw_normal, feature_distance,
                         normalized_momentum, quantize_ste)
from .params import HyperParameters, check_choice, hparam, hyperparameters

_BOX = 4  # side of the box sums of the variance-consistency loss
INITS = ("random", "original")


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
    boxes = box_sums(images)  # (B, C, H - 3, W - 3)
    return boxes.flatten(2).var(dim=2, unbiased=True).sum(dim=1)


def box_sums(images: torch.Tensor, size: int = _BOX) -> torch.Tensor:
    """Sums over all ``size`` x ``size`` windows (stride 1, valid), ``(B, C, H, W) -> (B, C,
    H - size + 1, W - size + 1)``.

    The valid convolution with an all-ones kernel, computed as additions of shifted views
    (rows, then columns): each image's sums do not depend on its batch, whereas grouped
    ``conv2d`` picks its CPU kernel by batch size and rounds differently (measured: up to 2e-6).
    """
    height, width = images.shape[-2] - size + 1, images.shape[-1] - size + 1
    rows = images[..., :height, :]
    for i in range(1, size):
        rows = rows + images[..., i:i + height, :]
    boxes = rows[..., :width]
    for j in range(1, size):
        boxes = boxes + rows[..., j:j + width]
    return boxes


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


@hyperparameters
class AVIHParams(HyperParameters):
    """Hyper-parameters of :class:`AVIH`.

    The optional ``key_model`` is a module, not a hyper-parameter: a constructor argument,
    recorded in ``hparams()`` by its class name.
    """

    steps: int = hparam(100, "N, number of iterations (>= 0; 100 as in PixelFade's "
                        "comparison).")
    step_size: float = hparam(0.01, "initial step size alpha in pixel units (>= 0).")
    momentum: float = hparam(0.3, "momentum factor of the normalised gradient, in [0, 1).")
    decay: float = hparam(0.85, "factor applied to an image's step size when its patience runs "
                          "out, in (0, 1].")
    patience: int = hparam(16, "number of loss increases that trigger a decay (>= 1).")
    vc_weight: float = hparam(0.001, "c, weight of the variance-consistency loss (>= 0).")
    init: str = hparam("random", "'random': N(0, 1) noise clamped to [0, 1] (paper); "
                       "'original': the image.")
    key_weight: float = hparam(0.2, "weight of the key term (used only with a key_model; "
                               ">= 0).")
    quantize: bool = hparam(True, "optimise through, and return, the 8-bit rounded image.")
    seed: int | None = hparam(None, "run seed of the initial noise; None: a random one, "
                              "recorded nowhere. Without keys one local generator advances "
                              "across calls, so batches get different noise; with keys (as "
                              "the store passes) each image's noise comes from a generator "
                              "seeded by (seed, its key), the same in any batch or process.")

    def _validate(self) -> None:
        check_choice("init", self.init, INITS)
        for name, low in (("steps", 0), ("patience", 1), ("step_size", 0), ("vc_weight", 0),
                          ("key_weight", 0)):
            self._check_range(name, low)
        self._check_range("momentum", 0, 1, high_open=True)
        self._check_range("decay", 0, 1, low_open=True)


@register_protector("avih")
class AVIH(Protector):
    """AVIH protector; ``AVIH(model, **params)(images)`` returns the encrypted (protected) images.

    Optimises ``x_e`` in pixel space, starting from noise, so that the authorised feature of
    ``x_e`` matches the original's while a variance-consistency term keeps ``x_e`` free of local
    brightness structure. Per iteration ``i = 0 .. steps - 1``::

        L   = L_f(x_e) + vc_weight * L_vc(x_e) [+ key_weight * L_key(x_e)]     (per image)
        g   = dL/dx_e / mean|dL/dx_e|                                          (per image)
        m   = momentum * m + g
        x_e = clamp(x_e - alpha * m, 0, 1)

    and ``alpha`` (per image, from ``step_size``) is multiplied by ``decay`` each time the image's
    loss has risen (compared with its previous iteration, counted from ``i = 2``) ``patience``
    times. As in the official code, the count is updated after the step, so the step of the
    iteration where the count is reached still uses the old ``alpha``; the decay applies from
    the next iteration on.

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
    * **Key model in eval mode**: the official code runs its key generator in train mode
      (dropout active, BatchNorm normalising with the statistics of the current batch). Here it
      runs in eval mode (its flags are restored afterwards): with batch statistics, an image's
      key term, and so its encryption, would depend on its batch-mates and on the batch size
      (with batch size 1, the official setting for faces, BatchNorm normalises each image by
      itself), and dropout would make the term random at every step. In eval mode the key term
      is deterministic and per image, like the rest of this adaptation, and matches how a key
      holder decodes (one image at a time, in eval mode). BatchNorm layers built with
      ``track_running_stats=False`` still use batch statistics.
    * **8-bit output**: with ``quantize`` the losses are evaluated on the 8-bit rounded image
      through a straight-through estimator (as in :class:`PixelFade`), and the rounded image is
      returned, so the feature distance holds for the stored image.

    Cost: one forward pass for the reference feature, then per iteration one forward and one
    backward pass to the input (model frozen), and one final forward for the distance of the
    returned images.

    Args:
        model: the authorised model (normalisation inside, see :class:`AuthorizedModel`).
        key_model: optional image-to-image module ``G_key``, ``(B, 3, H, W) -> (B, 3, H, W)``
            pixels; run in eval mode, its output is clipped to [0, 1] and pulled to the original.
        **params: fields of :class:`AVIHParams`, e.g. ``steps=100, seed=0``.

    Shape:
        images ``(B, 3, H, W)`` in [0, 1] (at least two 4x4 windows) -> ``(B, 3, H, W)`` in
        [0, 1] on the same device; :meth:`protect` adds ``distance`` ``(B,)``, the feature MSE
        of the returned images (``constraint_met`` and ``replaced_fraction`` are None: AVIH has
        neither).

    Raises:
        ValueError: without a model or for invalid hyper-parameters.
        TypeError: for a ``key_model`` that is not a module.
    """

    Params = AVIHParams
    requires_model = True

    def __init__(self, model: AuthorizedModel, key_model: nn.Module | None = None,
                 **params) -> None:
        super().__init__(model, **params)
        if key_model is not None and not isinstance(key_model, nn.Module):
            raise TypeError(f"key_model must be an nn.Module or None, got {key_model!r}")
        self.key_model = key_model

    def hparams(self) -> dict:
        """The fields of :class:`AVIHParams`, then ``key_model``'s class name (or None)."""
        key_model = None if self.key_model is None else type(self.key_model).__name__
        return {**super().hparams(), "key_model": key_model}

    def _check(self, images: torch.Tensor) -> None:
        check_images(images)
        _check_size(*images.shape[-2:])

    def _protect_with(self, images: torch.Tensor, reference: torch.Tensor,
                      generator: Generators) -> ProtectionResult:
        p = self.params
        encrypted = self._initial(images, generator)
        momentum = torch.zeros_like(encrypted)
        step_size = torch.full(images.shape[:1], p.step_size, device=images.device,
                               dtype=images.dtype)
        count = torch.zeros(images.shape[:1], dtype=torch.long, device=images.device)
        previous = None
        with torch.enable_grad():
            for i in range(p.steps):
                x = encrypted.detach().requires_grad_(True)
                loss = self._loss(x, images, reference)
                grad, = torch.autograd.grad(loss.sum(), x)
                momentum = normalized_momentum(momentum, grad, p.momentum)
                encrypted = (x.detach() - step_size.view(-1, 1, 1, 1) * momentum).clamp(0, 1)
                # after the update, as the official code: a decay counts from the next step
                count, step_size = _update_step_sizes(loss.detach(), previous, count, step_size,
                                                      i, p.patience, p.decay)
                previous = loss.detach()
        return ProtectionResult(images=encrypted)

    # ------------------------------------------------------------------ helpers

    def _initial(self, images: torch.Tensor, generator: Generators) -> torch.Tensor:
        """``(B, 3, H, W)`` starting point in [0, 1]: clamped N(0, 1) noise drawn from
        ``generator`` (one, or one per image), or the images."""
        if self.params.init == "original":
            return images.clone()
        return draw_normal(images.shape, generator, images.device, images.dtype).clamp(0, 1)

    def _loss(self, encrypted: torch.Tensor, images: torch.Tensor,
              reference: torch.Tensor) -> torch.Tensor:
        """Per-image total loss ``(B,)`` of the current encrypted images (one model forward)."""
        p = self.params
        pixels = quantize_ste(encrypted) if p.quantize else encrypted
        loss = feature_distance(self.model(pixels), reference)
        if p.vc_weight:
            loss = loss + p.vc_weight * variance_consistency_loss(pixels)
        if self.key_model is not None and p.key_weight:
            with eval_mode(self.key_model):
                recovered = self.key_model(pixels).clamp(0, 1)
            loss = loss + p.key_weight * (recovered - images).pow(2).flatten(1).mean(dim=1)
        return loss
