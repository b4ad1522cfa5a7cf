"""The protector interface and the one registry of protectors.

A protector is built from the authorised model and its hyper-parameters and called on a batch of
pixel images in [0, 1]::

    protector = build_protector("pixelfade", model, steps=100)
    protected = protector(images)            # (B, 3, H, W) in [0, 1]
    result = protector.protect(images)        # images + per-image diagnostics
"""
from __future__ import annotations

import dataclasses
import secrets
from typing import Callable

import torch

from ..io import quantize as quantize_8bit
from ..models import AuthorizedModel

PROTECTORS: dict[str, type["Protector"]] = {}


def register_protector(name: str) -> Callable[[type], type]:
    """Class decorator adding a protector to :data:`PROTECTORS` under ``name``."""
    def decorator(cls: type) -> type:
        if name in PROTECTORS and PROTECTORS[name] is not cls:
            raise ValueError(f"A protector named {name!r} is already registered")
        PROTECTORS[name] = cls
        cls.name = name
        return cls
    return decorator


def list_protectors() -> list[str]:
    """Names accepted by :func:`build_protector`."""
    return sorted(PROTECTORS)


def build_protector(name: "str | Protector", model: AuthorizedModel | None = None,
                    **kwargs) -> "Protector":
    """Builds a registered protector; a protector object is returned unchanged.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
    """
    if isinstance(name, Protector):
        return name
    if name not in PROTECTORS:
        raise ValueError(f"Unknown protector {name!r}; choose one of {list_protectors()}")
    return PROTECTORS[name](model, **kwargs)


@dataclasses.dataclass
class ProtectionResult:
    """Protected images and per-image diagnostics (all tensors on the input's device).

    Attributes:
        images: ``(B, 3, H, W)`` protected pixel images in [0, 1] (8-bit grid if quantised).
        distance: ``(B,)`` feature distance between the returned images and the originals under
            the protector's loss (per-dimension MSE by default), or None without a model.
        constraint_met: ``(B,)`` bool, distance within eps (None where a protector has no eps).
        replaced_fraction: ``(B,)`` fraction of values replaced at least once (None if n/a).
    """

    images: torch.Tensor
    distance: torch.Tensor | None = None
    constraint_met: torch.Tensor | None = None
    replaced_fraction: torch.Tensor | None = None


def check_images(images: torch.Tensor) -> None:
    """Validates a batch of pixel images at a public boundary."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"Expected images of shape (B, 3, H, W), got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"Expected float images in [0, 1], got dtype {images.dtype}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"Expected pixel values in [0, 1], got [{images.min():.3f}, "
                         f"{images.max():.3f}]")


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A local generator on ``device``: seeded with ``seed``, or from the OS when None."""
    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbits(63) if seed is None else seed)
    return generator


def feature_distance(features: torch.Tensor, reference: torch.Tensor,
                     reduction: str = "mean") -> torch.Tensor:
    """Per-image squared feature distance, ``(B, D), (B, D) -> (B,)``.

    ``'mean'``: mean over dimensions (MSE, the official code's scale); ``'sum'``: squared L2.
    """
    squared = (features - reference).pow(2)
    if reduction == "mean":
        return squared.mean(dim=1)
    if reduction == "sum":
        return squared.sum(dim=1)
    raise ValueError(f"Unknown loss reduction {reduction!r}; choose 'mean' or 'sum'")


class Protector:
    """Base class: subclasses implement :meth:`_protect` (and may override :meth:`protect`).

    Args:
        model: the authorised model; optional for protectors that do not optimise, which then
            use it only for the distance diagnostic.
        quantize: round outputs to the 8-bit grid, as they will be stored.
    """

    name = "base"

    def __init__(self, model: AuthorizedModel | None = None, quantize: bool = True) -> None:
        self.model = model
        self.quantize = quantize

    def hparams(self) -> dict:
        """Hyper-parameters recorded in manifests (JSON-serialisable)."""
        return {"quantize": self.quantize}

    def _protect(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def protect(self, images: torch.Tensor) -> ProtectionResult:
        """Protects ``(B, 3, H, W)`` pixel images in [0, 1]; returns images and diagnostics."""
        check_images(images)
        protected = self._protect(images).clamp(0, 1)
        if self.quantize:
            protected = quantize_8bit(protected)
        distance = None
        if self.model is not None:
            with torch.no_grad():
                distance = feature_distance(self.model(protected), self.model(images))
        return ProtectionResult(protected.detach(), distance)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.protect(images).images

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({params})"
