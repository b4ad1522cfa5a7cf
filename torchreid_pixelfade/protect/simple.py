"""Simple protectors: identity, Gaussian blur and mosaic (``algorithms.md`` section 5), and
pure noise (the negative control of an evaluation: a gallery that carries no information).

Pure functions with thin protector wrappers. Sizes follow PrivacyReID's baselines, defined at
256x128 and scaled with the image height: blur sigma 12 px, mosaic cells of 24 px.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from .base import ProtectionResult, Protector, register_protector
from .functional import Generators, draw_normal
from .params import HyperParameters, hparam, hyperparameters

REFERENCE_HEIGHT = 256
BLUR_SIGMA_AT_256 = 12.0
MOSAIC_CELL_AT_256 = 24


def gaussian_kernel1d(sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` px, radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with edge extension (as Pillow's ``GaussianBlur``).

    Args:
        images: ``(B, C, H, W)``.
        sigma: standard deviation in pixels (Pillow's "radius"); 0 returns the input.

    Returns:
        ``(B, C, H, W)`` blurred images; a constant image stays constant.
    """
    if sigma <= 0:
        return images
    kernel = gaussian_kernel1d(sigma, images.device, images.dtype)
    radius = kernel.numel() // 2
    channels = images.shape[1]
    out = images
    for weight, pad in ((kernel.view(1, 1, 1, -1), (radius, radius, 0, 0)),
                        (kernel.view(1, 1, -1, 1), (0, 0, radius, radius))):
        out = F.conv2d(F.pad(out, pad, mode="replicate"), weight.expand(channels, 1, -1, -1),
                       groups=channels)
    return out


def mosaic(images: torch.Tensor, cell: int) -> torch.Tensor:
    """Mosaic: cells of ``cell`` x ``cell`` px from the top-left corner, each filled with its
    top-left pixel; cells at the right and bottom edges are truncated.

    Shape: ``(B, C, H, W) -> (B, C, H, W)``.
    """
    if cell < 1:
        raise ValueError(f"Mosaic cell must be >= 1 px, got {cell}")
    height, width = images.shape[-2:]
    rows = torch.arange(height, device=images.device) // cell * cell
    cols = torch.arange(width, device=images.device) // cell * cell
    return images[..., rows, :][..., :, cols]


def scaled_to_height(value_at_256: float, height: int) -> float:
    """A size defined at 256x128 scaled to images of ``height`` pixels."""
    return value_at_256 * height / REFERENCE_HEIGHT


_QUANTIZE_DOC = "round outputs to the 8-bit grid, as they will be stored."


@hyperparameters
class IdentityParams(HyperParameters):
    """Hyper-parameters of :class:`Identity`."""

    quantize: bool = hparam(True, _QUANTIZE_DOC)


@hyperparameters
class BlurParams(HyperParameters):
    """Hyper-parameters of :class:`Blur`."""

    sigma: float | None = hparam(None, "Gaussian standard deviation in pixels (> 0); None: 12 "
                                 "px at height 256, scaled with the image height.")
    quantize: bool = hparam(True, _QUANTIZE_DOC)

    def _validate(self) -> None:
        self._check_range("sigma", 0, low_open=True)


@hyperparameters
class MosaicParams(HyperParameters):
    """Hyper-parameters of :class:`Mosaic`."""

    cell: int | None = hparam(None, "side of the mosaic cells in pixels (>= 1); None: 24 px at "
                              "height 256, scaled with the image height.")
    quantize: bool = hparam(True, _QUANTIZE_DOC)

    def _validate(self) -> None:
        if self.cell is not None and not isinstance(self.cell, numbers.Integral):
            raise ValueError(f"{type(self).__name__}: cell must be an integer >= 1 (pixels), "
                             f"got {self.cell!r}")
        self._check_range("cell", 1)


@hyperparameters
class NoiseParams(HyperParameters):
    """Hyper-parameters of :class:`Noise`."""

    std: float = hparam(0.25, "standard deviation of the Gaussian noise around grey 0.5, in "
                        "pixel units (> 0); values are clipped to [0, 1].")
    quantize: bool = hparam(True, _QUANTIZE_DOC)
    seed: int | None = hparam(None, "run seed of the noise; None: a random one, recorded "
                              "nowhere. With keys (as the store runs it) each image's noise is "
                              "seeded by (seed, its key).")

    def _validate(self) -> None:
        self._check_range("std", 0, low_open=True)


@register_protector("identity")
class Identity(Protector):
    """No protection (the images as stored in 8 bit): the O2O reference in the same pipeline.

    Args:
        model: optional authorised model, used only for the distance diagnostic.
        **params: fields of :class:`IdentityParams`.
    """

    Params = IdentityParams

    def _protect(self, images: torch.Tensor,
                 reference: torch.Tensor | None) -> ProtectionResult:
        return ProtectionResult(images.clone())


@register_protector("blur")
class Blur(Protector):
    """Gaussian blur (:func:`gaussian_blur`).

    Args:
        model: optional authorised model, used only for the distance diagnostic.
        **params: fields of :class:`BlurParams`, e.g. ``sigma=3.0``.
    """

    Params = BlurParams

    def _protect(self, images: torch.Tensor,
                 reference: torch.Tensor | None) -> ProtectionResult:
        sigma = self.params.sigma
        if sigma is None:
            sigma = scaled_to_height(BLUR_SIGMA_AT_256, images.shape[-2])
        return ProtectionResult(gaussian_blur(images, sigma))


@register_protector("mosaic")
class Mosaic(Protector):
    """Mosaic (:func:`mosaic`).

    Args:
        model: optional authorised model, used only for the distance diagnostic.
        **params: fields of :class:`MosaicParams`, e.g. ``cell=8``.
    """

    Params = MosaicParams

    def _protect(self, images: torch.Tensor,
                 reference: torch.Tensor | None) -> ProtectionResult:
        cell = self.params.cell
        if cell is None:
            cell = max(1, round(scaled_to_height(MOSAIC_CELL_AT_256, images.shape[-2])))
        return ProtectionResult(mosaic(images, cell))


@register_protector("noise")
class Noise(Protector):
    """Pure noise: every image replaced by ``clip(0.5 + std * N(0, 1), 0, 1)``, independent of
    the original. A negative control: Re-ID on a noise gallery must sit at chance level, so an
    evaluation that scores above chance on it is broken.

    Args:
        model: optional authorised model, used only for the distance diagnostic.
        **params: fields of :class:`NoiseParams`, e.g. ``std=0.2``; ``seed`` makes the noise
            reproducible.
    """

    Params = NoiseParams

    def _protect_with(self, images: torch.Tensor, reference: torch.Tensor | None,
                      generator: Generators) -> ProtectionResult:
        noise = draw_normal(images.shape, generator, images.device, images.dtype)
        return ProtectionResult((0.5 + self.params.std * noise).clamp(0, 1))
