"""Per-model calibration of PixelFade's relative eps by the horizontal-flip distance.

One relative eps does not mean the same for every model: the authorised feature of a robust,
well-trained model moves little between an image and its mirror image, that of a small model
trained from scratch moves a lot (measured, ``docs/RESULTS.md`` 10: the median flip distance is
3.8-7% of the feature's mean square for the image and text-image models, 33-38% for the
visible-infrared demo's thermal path). The flip distance is the model's own measure of a change
that does not alter the person (Re-ID models are trained with flip augmentation), so it sets the
scale of the bound:

    eps = multiple x median_i d(f(x_i), f(flip(x_i)))                  (eps_mode 'absolute')
    eps = multiple x median_i d(f(x_i), f(flip(x_i))) / d(f(x_i), 0)   (eps_mode 'relative')

``multiple`` = 1: "the protected image is, to the authorised model, about as far from the
original as the original's mirror image" (the absolute form is the flip-MSE median of
``tools/calibrate_eps.py``). The median is taken over the images to protect (or an evenly
spaced subset) and needs no labels. It is rounded to :data:`SIGNIFICANT_DIGITS`, which makes
equal most values measured on other devices or batch sizes, not all (one near a rounding
boundary may land on either side); ``protect`` therefore measures on one rank and a resumed run
reuses its folder's value (:mod:`torchreid_pixelfade.workflows.calibration`).
"""
from __future__ import annotations

import math

import torch

from .functional import feature_distance

#: Above this median flip distance over the median distance between two different images, a
#: flip-calibrated bound is loose enough to cost ranking: measured 0.17 on the visible-infrared
#: demo's thermal path (protected Rank-1 = original) and 0.49 on a model trained for minutes on
#: real crops (0.71 x), 0.03-0.05 on the image and text-image models (docs/RESULTS.md 14). A
#: threshold between two measured points, for a warning, not a tuned constant.
LOOSE_FLIP_TO_PAIR = 0.25

#: Significant digits the calibrated eps keeps (so that last-bit differences between devices,
#: thread counts and batch sizes rarely change it).
SIGNIFICANT_DIGITS = 2


@torch.no_grad()
def mirrored_features(model, images: torch.Tensor, batch_size: int = 128
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The features of ``images`` and of their mirror images (horizontal flip): the one pass
    every measurement below is computed from.

    Args:
        model: the authorised model, pixels in [0, 1] -> raw features ``(B, D)``.
        images: ``(N, 3, H, W)`` in [0, 1], on the model's device.
        batch_size: images per forward pass.

    Returns:
        ``(features, mirrored)``, each ``(N, D)`` float32 on the CPU.
    """
    pairs = [(model(batch).float().cpu(), model(batch.flip(-1)).float().cpu())
             for batch in images.split(batch_size)]
    if not pairs:
        return torch.zeros(0, 0), torch.zeros(0, 0)
    return torch.cat([f for f, _ in pairs]), torch.cat([m for _, m in pairs])


def flip_distances_of(features: torch.Tensor, mirrored: torch.Tensor, reduction: str = "mean",
                      relative: bool = False) -> torch.Tensor:
    """Per image, ``d(f(x), f(flip(x)))`` ``(N,)``, or over ``d(f(x), 0)`` when ``relative``
    (PixelFade's ``eps_mode='relative'``; NaN where the feature is zero), from
    :func:`mirrored_features`; ``reduction`` is PixelFade's ``loss_reduction``."""
    distance = feature_distance(mirrored, features, reduction)
    if relative:
        distance = distance / feature_distance(features, torch.zeros_like(features), reduction)
    return distance


def flip_distances(model, images: torch.Tensor, batch_size: int = 128, reduction: str = "mean",
                   relative: bool = False) -> torch.Tensor:
    """:func:`flip_distances_of` ``model``'s features of ``images`` (see
    :func:`mirrored_features`)."""
    return flip_distances_of(*mirrored_features(model, images, batch_size), reduction, relative)


def flip_to_pair(features: torch.Tensor, mirrored: torch.Tensor,
                 reduction: str = "mean") -> float:
    """The median flip distance over the median distance between two different images.

    A label-free check of a flip-calibrated bound: near 0, the mirror image is much closer to
    the original than another image is; near 1, mirroring moves the feature as far as changing
    the image (and so, mostly, the person) does.

    Args:
        features, mirrored: ``(N, D)`` from :func:`mirrored_features` (N >= 2).
        reduction: PixelFade's ``loss_reduction``.

    Returns:
        The ratio (``inf`` when every pair of images has equal features).
    """
    if len(features) < 2:
        raise ValueError("the flip-to-pair ratio needs at least 2 images")
    pairs = torch.cdist(features, features).pow(2)
    if reduction == "mean":
        pairs = pairs / features.shape[1]
    upper = torch.triu_indices(len(features), len(features), 1)
    pair = float(pairs[upper[0], upper[1]].quantile(0.5))
    flip = float(flip_distances_of(features, mirrored, reduction).quantile(0.5))
    return flip / pair if pair > 0 else float("inf")


def flip_to_pair_ratio(model, images: torch.Tensor, batch_size: int = 128,
                       reduction: str = "mean") -> float:
    """:func:`flip_to_pair` of ``model``'s features of ``images``."""
    return flip_to_pair(*mirrored_features(model, images, batch_size), reduction)


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (0 stays 0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def calibrated_eps(features: torch.Tensor, mirrored: torch.Tensor, multiple: float = 1.0,
                   reduction: str = "mean", eps_mode: str = "relative") -> float:
    """PixelFade's eps: ``multiple`` x the median flip distance (relative ones for
    ``eps_mode='relative'``), to :data:`SIGNIFICANT_DIGITS` significant digits.

    Args:
        features, mirrored: ``(N, D)`` from :func:`mirrored_features`.
        multiple: the bound in units of the median flip distance (> 0).
        reduction: PixelFade's ``loss_reduction``.
        eps_mode: PixelFade's ``eps_mode`` the value is for, ``'absolute'`` or ``'relative'``.

    Returns:
        The value for ``eps``.

    Raises:
        ValueError: for ``multiple <= 0``, no images, no image with a non-zero feature, or a
            median flip distance of 0 (a mirror-blind feature).
    """
    if not multiple > 0:
        raise ValueError(f"the flip multiple must be > 0, got {multiple}")
    if eps_mode not in ("absolute", "relative"):
        raise ValueError(f"eps_mode must be 'absolute' or 'relative', got {eps_mode!r}")
    if not len(features):
        raise ValueError("eps calibration needs at least one image")
    distances = flip_distances_of(features, mirrored, reduction, eps_mode == "relative")
    distances = distances[torch.isfinite(distances)]
    if not len(distances):
        raise ValueError("eps calibration: every image has a zero feature; the model's "
                         "features cannot set a relative bound")
    median = float(distances.quantile(0.5))  # the mean of the two middle values for even N
    if not median > 0:
        raise ValueError("eps calibration: the median flip distance is 0 (the model's feature "
                         "ignores mirroring), so it cannot set the bound; give eps instead")
    return round_significant(multiple * median)


def flip_calibrated_eps(model, images: torch.Tensor, multiple: float = 1.0,
                        batch_size: int = 128, reduction: str = "mean",
                        eps_mode: str = "relative") -> float:
    """:func:`calibrated_eps` of ``model``'s features of ``images`` (see
    :func:`mirrored_features`)."""
    if not multiple > 0:  # before any forward pass
        raise ValueError(f"the flip multiple must be > 0, got {multiple}")
    return calibrated_eps(*mirrored_features(model, images, batch_size), multiple, reduction,
                          eps_mode)
