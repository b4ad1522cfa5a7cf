"""Privacy metrics for protected images: SSIM, PSNR and the Anderson-Darling statistic.

Lower SSIM / PSNR between a protected image and its original means less visual information leaks.
The Anderson-Darling (AD) statistic measures how far an image's values are from a Gaussian: the
PixelFade protection pushes the (normalised) image towards Gaussian noise, so a *small* AD means
the protected image looks like noise.

Documented input: torch tensors of shape (B, 3, H, W) (or a single (3, H, W) image), float, values
in [0, 1]. Also accepted: numpy arrays in HWC / BHWC layout, either uint8 (0..255) or float in
[0, 1]. All functions return one value per image as a float64 numpy array of shape (B,).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Sequence

import numpy as np
import torch
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..constants import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PSNR_CAP",
    "AD_SPACES",
    "psnr",
    "ssim",
    "anderson_darling",
    "privacy_metrics",
]

#: PSNR (dB) reported for identical images (whose true PSNR is +inf); larger values are clipped.
PSNR_CAP = 100.0
AD_SPACES = ("normalized", "pixel", "uint8")
#: p-value method passed to ``scipy.stats.anderson``; only the statistic is used, which does not
#: depend on it. Passing it silences scipy >= 1.17's FutureWarning.
_AD_METHOD = "interpolate"


def _to_bhwc(images: Any, name: str = "images") -> np.ndarray:
    """Convert images to a float64 (B, H, W, 3) numpy array.

    Args:
        images: torch (B, 3, H, W) / (3, H, W) float in [0, 1], or numpy (B, H, W, 3) / (H, W, 3),
            uint8 in [0, 255] or float in [0, 1].
        name: Argument name used in error messages.

    Returns:
        float64 array (B, H, W, 3); uint8 input is divided by 255, float values are not clipped.

    Raises:
        ValueError: If the shape is not one of the accepted layouts.
    """
    if isinstance(images, torch.Tensor):
        arr = images.detach().cpu().double().numpy()
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[1] != 3:
            raise ValueError(f"{name}: expected a torch tensor of shape (B, 3, H, W) or (3, H, W), "
                             f"got {tuple(images.shape)}")
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1))
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected a numpy array of shape (B, H, W, 3) or (H, W, 3), "
                         f"got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64)


def _pair(images: Any, references: Any) -> tuple[np.ndarray, np.ndarray]:
    """Convert two image batches to BHWC float64 and check their shapes agree."""
    a = _to_bhwc(images, "images")
    b = _to_bhwc(references, "references")
    if a.shape != b.shape:
        raise ValueError(f"images and references must have the same shape; got images "
                         f"{a.shape} vs references {b.shape} (as B, H, W, 3)")
    return a, b


def psnr(images: Any, references: Any) -> np.ndarray:
    """Per-image peak signal-to-noise ratio in pixel space (data range 1).

    Args:
        images: (B, 3, H, W) torch float in [0, 1] (see module docstring for other layouts).
        references: Same shape as ``images``.

    Returns:
        (B,) float64 PSNR in dB, clipped to at most :data:`PSNR_CAP` (100 dB), which is also the
        value for identical images.

    Raises:
        ValueError: If the shapes are invalid or differ.
    """
    a, b = _pair(images, references)
    out = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a, b)):
        with np.errstate(divide="ignore"):
            out[i] = peak_signal_noise_ratio(y, x, data_range=1.0)
    return np.minimum(out, PSNR_CAP)


def ssim(images: Any, references: Any) -> np.ndarray:
    """Per-image structural similarity (Gaussian window, sigma 1.5, data range 1).

    Uses ``skimage.metrics.structural_similarity`` with ``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False``, which matches piq / torchmetrics. Images need H, W >= 11.

    Args:
        images: (B, 3, H, W) torch float in [0, 1] (see module docstring for other layouts).
        references: Same shape as ``images``.

    Returns:
        (B,) float64 SSIM in [-1, 1] (1 for identical images).

    Raises:
        ValueError: If the shapes are invalid or differ, or images are smaller than 11x11.
    """
    a, b = _pair(images, references)
    if min(a.shape[1:3]) < 11:
        raise ValueError(f"ssim needs images of at least 11x11 pixels, got "
                         f"{a.shape[1]}x{a.shape[2]}")
    return np.array([
        structural_similarity(x, y, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                              sigma=1.5, use_sample_covariance=False)
        for x, y in zip(a, b)
    ], dtype=np.float64)


def _ad_values(img: np.ndarray, space: str, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Flattened values of one (H, W, 3) image in the requested space."""
    if space == "normalized":
        return ((img - mean) / std).ravel()
    if space == "pixel":
        return img.ravel()
    return np.round(img * 255.0).ravel()


def _ad_statistic(values: np.ndarray) -> float:
    """A^2 statistic against a normal with estimated mean/std; +inf for constant input."""
    if np.ptp(values) == 0:
        return float("inf")
    return float(stats.anderson(values, dist="norm", method=_AD_METHOD).statistic)


def anderson_darling(
    images: Any,
    space: str = "normalized",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """Per-image Anderson-Darling normality statistic A^2 of all 3*H*W values.

    Args:
        images: (B, 3, H, W) torch float, normally in [0, 1]; values outside [0, 1] are allowed
            and not clipped (see module docstring for other layouts).
        space: ``"normalized"``: per-channel ``(x - mean_c) / std_c``; ``"pixel"``: the raw [0, 1]
            values; ``"uint8"``: ``round(x * 255)``.
        mean: Per-channel (R, G, B) mean used for ``"normalized"``.
        std: Per-channel (R, G, B) std used for ``"normalized"``, all > 0.

    Returns:
        (B,) float64 A^2 statistics (>= 0; small means close to Gaussian). A constant image, for
        which the statistic is undefined, gives ``inf``. The statistic is invariant to affine maps
        applied uniformly to all channels, so the spaces differ only through the per-channel
        normalisation and uint8 rounding.

    Raises:
        ValueError: For bad shapes, an unknown ``space`` or bad ``mean`` / ``std``.
    """
    if space not in AD_SPACES:
        raise ValueError(f"space: expected one of {AD_SPACES}, got {space!r}")
    mean_arr = np.asarray(mean, dtype=np.float64)
    std_arr = np.asarray(std, dtype=np.float64)
    if mean_arr.shape != (3,) or std_arr.shape != (3,) or np.any(std_arr <= 0):
        raise ValueError(f"mean/std: expected 3 values each with std > 0, got mean={mean}, "
                         f"std={std}")
    batch = _to_bhwc(images, "images")
    return np.array([_ad_statistic(_ad_values(img, space, mean_arr, std_arr)) for img in batch],
                    dtype=np.float64)


def privacy_metrics(protected: Any, originals: Any) -> Dict[str, np.ndarray]:
    """SSIM, PSNR and AD of protected images in one call.

    Args:
        protected: (B, 3, H, W) torch float in [0, 1], the protected images.
        originals: Same shape, the unprotected originals.

    Returns:
        ``{"ssim": (B,), "psnr": (B,), "ad": (B,)}`` float64 arrays; ``ad`` is
        :func:`anderson_darling` of ``protected`` in the default ``"normalized"`` space.

    Raises:
        ValueError: If the shapes are invalid or differ.
    """
    return {
        "ssim": ssim(protected, originals),
        "psnr": psnr(protected, originals),
        "ad": anderson_darling(protected),
    }
