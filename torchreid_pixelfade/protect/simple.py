"""Simple protectors: identity, Gaussian blur and mosaic (``algorithms.md`` section 5).

Pure functions with thin protector wrappers. Sizes follow PrivacyReID's baselines, defined at
256x128 and scaled with the image height: blur sigma 12 px, mosaic cells of 24 px.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models import AuthorizedModel
from .base import Protector, register_protector

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


@register_protector("identity")
class Identity(Protector):
    """No protection (the images as stored in 8 bit): the O2O reference in the same pipeline."""

    def _protect(self, images: torch.Tensor) -> torch.Tensor:
        return images.clone()


@register_protector("blur")
class Blur(Protector):
    """Gaussian blur; ``sigma`` None means 12 px at height 256, scaled with the image height."""

    def __init__(self, model: AuthorizedModel | None = None, sigma: float | None = None,
                 quantize: bool = True) -> None:
        super().__init__(model, quantize=quantize)
        self.sigma = sigma

    def hparams(self) -> dict:
        return {"sigma": self.sigma, "quantize": self.quantize}

    def _protect(self, images: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma if self.sigma is not None else scaled_to_height(
            BLUR_SIGMA_AT_256, images.shape[-2])
        return gaussian_blur(images, sigma)


@register_protector("mosaic")
class Mosaic(Protector):
    """Mosaic; ``cell`` None means 24 px at height 256, scaled with the image height."""

    def __init__(self, model: AuthorizedModel | None = None, cell: int | None = None,
                 quantize: bool = True) -> None:
        super().__init__(model, quantize=quantize)
        self.cell = cell

    def hparams(self) -> dict:
        return {"cell": self.cell, "quantize": self.quantize}

    def _protect(self, images: torch.Tensor) -> torch.Tensor:
        cell = self.cell if self.cell is not None else max(1, round(scaled_to_height(
            MOSAIC_CELL_AT_256, images.shape[-2])))
        return mosaic(images, cell)
