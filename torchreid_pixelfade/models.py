"""The authorised Re-ID model: normalisation inside, frozen, always in eval mode; weight loading.

Protectors work on pixel images in [0, 1]. :class:`AuthorizedModel` wraps any torchreid model (or any
``nn.Module`` that returns a feature vector in eval mode), normalises its input with the model's
mean/std and returns ``(B, D)`` features. Its parameters are frozen, so a gradient step of a
protector costs one forward and one backward pass to the input and nothing more.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .constants import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Sets ``requires_grad=False`` on all parameters for the block and restores the flags."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Puts ``module`` in eval mode for the block and restores its previous train/eval flags."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes.items():
            m.train(training)


class AuthorizedModel(nn.Module):
    """Wraps a Re-ID model as the authorised feature extractor ``f`` of PixelFade.

    Args:
        model: a torchreid model (or any module returning features in eval mode).
        mean: per-channel normalisation mean applied inside ``forward``.
        std: per-channel normalisation std applied inside ``forward``.
        name: a label recorded in manifests and results (defaults to the class name).
        freeze: set ``requires_grad=False`` on the model's parameters (use False together with
            :func:`frozen` to protect with a model that is still being trained).

    Shape:
        - Input: ``(B, 3, H, W)`` pixel images in [0, 1].
        - Output: ``(B, D)`` float features (the model's eval-mode output, flattened).

    The wrapped model is frozen (``requires_grad_(False)``) and run in eval mode on every call;
    its own train/eval flags are restored afterwards, so wrapping a model that is being trained
    does not change its training.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> AuthorizedModel(net)(torch.rand(2, 3, 64, 32)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        name: str | None = None,
        freeze: bool = True,
    ) -> None:
        super().__init__()
        self.model = model.requires_grad_(False) if freeze else model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.name = name or type(model).__name__

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Pixel images in [0, 1] -> the model's normalised input space."""
        return (images - self.mean.to(images)) / self.std.to(images)

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's normalised input space -> pixel space."""
        return inputs * self.std.to(inputs) + self.mean.to(inputs)

    def forward_normalized(self, inputs: torch.Tensor) -> torch.Tensor:
        """Features of inputs that are already normalised, ``(B, 3, H, W) -> (B, D)``."""
        with eval_mode(self.model):
            features = self.model(inputs)
        if isinstance(features, (tuple, list)):
            features = features[0]
        return features.flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(self.normalize(images))

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def build_reid_model(name: str, num_classes: int = 1, loss: str = "softmax") -> nn.Module:
    """Builds a torchreid factory model with random weights (never downloads).

    Raises:
        ValueError: if ``name`` is not in torchreid's model factory (the message lists them).
    """
    from ._torchreid import model_names, tr

    factory = model_names()
    if name not in factory:
        raise ValueError(f"Unknown torchreid model {name!r}; choose one of {sorted(factory)}")
    return tr.models.build_model(name, num_classes=num_classes, loss=loss, pretrained=False,
                                 use_gpu=False)


def read_checkpoint(path: str) -> object:
    """``torch.load`` that reads plain state dicts and torchreid's own checkpoints on torch >= 2.6.

    torchreid's ``save_checkpoint`` stores numpy scalars (e.g. ``rank1``), which torch >= 2.6
    refuses with ``weights_only=True``; those few numpy types are allow-listed, nothing else.
    """
    safe = [np.dtype, type(np.dtype("float32")), type(np.dtype("float64"))]
    scalar = getattr(getattr(np, "_core", np.core), "multiarray").scalar
    safe.append(scalar)
    with torch.serialization.safe_globals(safe):
        return torch.load(path, map_location="cpu", weights_only=True)


def _state_dict_of(checkpoint: object, path: str) -> dict:
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: expected a state dict or a torchreid checkpoint, "
                         f"got {type(checkpoint).__name__}")
    return OrderedDict((k[7:] if k.startswith("module.") else k, v) for k, v in checkpoint.items())


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Loads a plain state dict or a torchreid checkpoint into ``model``.

    Unlike torchreid's ``load_pretrained_weights``, which warns and keeps random weights when
    nothing matches, this fails loudly: an authorised model that silently failed to load would
    make every privacy result meaningless. Layers whose name or shape differ (typically the
    classifier, sized by the number of training identities) are skipped and logged.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a checkpoint or no layer of it matches the model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        checkpoint = read_checkpoint(path)
    except Exception as error:  # pickle, zip and weights_only errors all land here
        raise ValueError(f"{path}: cannot read weights: {error}") from error
    source = _state_dict_of(checkpoint, path)
    target = model.state_dict()
    matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    if not matched:
        raise ValueError(f"{path}: no layer matches the model {type(model).__name__} "
                         f"(file has {len(source)} entries, e.g. {list(source)[:3]})")
    skipped = sorted(set(target) - set(matched))
    if skipped:
        logger.info("%s: %d of %d layers loaded; not loaded: %s", path, len(matched), len(target),
                    skipped[:10])
    model.load_state_dict(matched, strict=False)
    return model
