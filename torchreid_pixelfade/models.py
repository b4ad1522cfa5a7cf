"""The authorised Re-ID model: normalisation inside, frozen, always in eval mode; weight loading.

Protectors work on pixel images in [0, 1]. :class:`AuthorizedModel` wraps any torchreid model (or
any ``nn.Module`` that returns a feature vector in eval mode), normalises its input with the
model's mean/std and returns ``(B, D)`` features. Its parameters are frozen, so a gradient step of a
protector costs one forward and one backward pass to the input and nothing more.
"""
from __future__ import annotations

import contextlib
import itertools
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
        """Features of inputs that are already normalised, ``(B, 3, H, W) -> (B, D)``.

        The model runs in its own dtype (that of its first floating-point parameter or buffer):
        inputs of another float dtype are cast to it and the features cast back, so float64
        inputs give float64 features, differentiable with respect to the inputs.
        """
        dtype = self.model_dtype()
        with eval_mode(self.model):
            features = self.model(inputs if dtype is None else inputs.to(dtype))
        if isinstance(features, (tuple, list)):
            features = features[0]
        return features.flatten(1).to(inputs.dtype)

    def model_dtype(self) -> torch.dtype | None:
        """The dtype the wrapped model computes in; None for a model without float tensors."""
        tensors = itertools.chain(self.model.parameters(), self.model.buffers())
        return next((t.dtype for t in tensors if t.is_floating_point()), None)

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


#: Keys under which checkpoints keep their state dict: torchreid, AGW (``{'net': ...}``), IRRA.
CHECKPOINT_KEYS = ("state_dict", "net", "model")


def _state_dict_of(checkpoint: object, path: str) -> dict:
    for key in CHECKPOINT_KEYS:
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: expected a state dict or a torchreid checkpoint, "
                         f"got {type(checkpoint).__name__}")
    return OrderedDict((k[7:] if k.startswith("module.") else k, v) for k, v in checkpoint.items())


#: Keys that :func:`load_weights` may leave unloaded by default: the classifier heads of
#: torchreid's models (``classifier.*``; HACNN's ``classifier_global.*`` and
#: ``classifier_local.*``), sized by the training identities and unused for features.
CLASSIFIER_PREFIXES = ("classifier",)


def load_weights(model: nn.Module, path: str | os.PathLike,
                 allow_missing: Sequence[str] = CLASSIFIER_PREFIXES) -> nn.Module:
    """Loads a plain state dict or a torchreid checkpoint into ``model``, refusing partial loads.

    Unlike torchreid's ``load_pretrained_weights``, which warns and keeps random weights when
    little or nothing matches, this fails loudly: an authorised model that silently kept random
    layers would make every privacy result meaningless. An entry is loaded when the file has
    the same key with the same shape. Every parameter and every floating-point buffer (e.g.
    BatchNorm running statistics, which eval mode uses) must be loaded, except those whose key
    starts with one of ``allow_missing``; by default that is the classifier head, sized by the
    number of training identities and unused by the authorised model, which takes features
    only. Integer buffers (BatchNorm's ``num_batches_tracked`` counters) are loaded when they
    match but neither counted nor required: every BatchNorm has one, whatever the architecture.
    Unloaded and unused entries are logged.

    Args:
        model: the module to load into (modified in place, only if the load is accepted).
        path: a file written by ``torch.save``: a state dict, or a dict with a ``state_dict``
            entry (torchreid's checkpoints); a ``module.`` prefix (DataParallel) is removed.
        allow_missing: prefixes of keys that may keep their current values (plain string
            prefixes: ``"classifier"`` also covers ``classifier_global.weight``); ``()`` requires
            every entry.

    Returns:
        ``model``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a checkpoint, or leaves a required entry of the model
            unloaded (the message names the file, the counts and the first missing keys).
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
    _check_loaded(model, path, source, matched, _prefixes(allow_missing))
    unused = sorted(set(source) - set(matched))
    skipped = sorted(set(target) - set(matched))
    if skipped or unused:
        logger.info("%s: %s; not loaded: %s; unused from the file: %s", path,
                    _load_counts(model, matched), skipped[:10], unused[:10])
    model.load_state_dict(matched, strict=False)
    return model


def _prefixes(allow_missing: Sequence[str]) -> tuple[str, ...]:
    return (allow_missing,) if isinstance(allow_missing, str) else tuple(allow_missing)


def _weight_keys(model: nn.Module) -> tuple[list[str], list[str]]:
    """State-dict keys of the parameters and of the floating-point buffers of ``model``."""
    parameters = [key for key, _ in model.named_parameters(remove_duplicate=False)]
    known = set(parameters)
    buffers = [key for key, value in model.state_dict().items()
               if key not in known and value.is_floating_point()]
    return parameters, buffers


def _load_counts(model: nn.Module, matched: dict) -> str:
    """``'loaded 10 of 12 parameters and 4 of 4 float buffers'``."""
    parameters, buffers = _weight_keys(model)
    loaded = (sum(key in matched for key in keys) for keys in (parameters, buffers))
    return (f"loaded {next(loaded)} of {len(parameters)} parameters and {next(loaded)} of "
            f"{len(buffers)} float buffers")


def _check_loaded(model: nn.Module, path: str, source: dict, matched: dict,
                  allow_missing: tuple[str, ...]) -> None:
    """Raises ``ValueError`` unless every required parameter and float buffer is matched."""
    parameters, buffers = _weight_keys(model)
    weights = parameters + buffers
    if not any(key in matched for key in weights):
        raise ValueError(f"{path}: no layer matches the model {type(model).__name__} "
                         f"({_load_counts(model, matched)}; the file has {len(source)} "
                         f"entries, e.g. {list(source)[:3]})")
    missing = [key for key in weights
               if key not in matched and not key.startswith(allow_missing)]
    if missing:
        target = model.state_dict()
        details = [_missing_detail(key, source, target) for key in missing[:5]]
        raise ValueError(f"{path}: {_load_counts(model, matched)} of {type(model).__name__}; "
                         f"{len(missing)} required entries not loaded: [{', '.join(details)}"
                         f"{', ...' if len(missing) > 5 else ''}] (allow_missing="
                         f"{allow_missing}); are these the weights of this architecture?")


def _missing_detail(key: str, source: dict, target: dict) -> str:
    if key not in source:
        return f"'{key}' (absent from the file)"
    return (f"'{key}' (file {tuple(source[key].shape)}, model "
            f"{tuple(target[key].shape)})")
