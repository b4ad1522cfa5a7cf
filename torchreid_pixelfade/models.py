"""The authorised Re-ID model: normalisation inside, frozen, always in eval mode; weight loading.

Protectors work on pixel images in [0, 1]. :class:`AuthorizedModel` wraps any torchreid model (or
any ``nn.Module`` that returns a feature vector in eval mode), normalises its input with the
model's mean/std and returns ``(B, D)`` features. Its parameters are frozen, so a gradient step of a
protector costs one forward and one backward pass to the input and nothing more.

Fast paths (``channels_last``, ``precision``, ``compile``) change how the wrapped net computes,
never what the protectors optimise: the image state stays in the inputs' dtype (float32), and
features come back in it. :func:`resolve_fast_paths` picks them per device; ``docs/fast_paths.md``
has the measurements behind its choices.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import os
from collections import OrderedDict
from typing import Callable, Iterator, Sequence

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


#: ``precision`` values: float32 under PyTorch's global settings; TensorFloat-32 matmuls and
#: convolutions (CUDA only, the same as ``'fp32'`` elsewhere); the net's forward under autocast
#: to bfloat16 or float16.
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
#: the autocast dtype of each half ``precision``
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: ``channels_last`` values of :func:`resolve_fast_paths` (and of the config key)
CHANNELS_LAST = ("auto", "on", "off")
#: device types on which ``channels_last='auto'`` converts: CPU (measured faster for every
#: backbone we ship configs for, equal features; docs/fast_paths.md) and CUDA (cuDNN's NHWC
#: kernels; not measured here, no GPU was available)
AUTO_CHANNELS_LAST_DEVICES = ("cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class FastPaths:
    """How :class:`AuthorizedModel` runs its net (see :func:`resolve_fast_paths`).

    Attributes:
        channels_last: the net's 4-D weights and its inputs in channels-last memory format.
        precision: one of :data:`PRECISIONS`.
        compile: the net wrapped with ``torch.compile`` on its first call.
    """

    channels_last: bool = False
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def is_plain(self) -> bool:
        """Whether these are the defaults (nothing changes how the net computes)."""
        return self == FastPaths()


def resolve_fast_paths(device: str | torch.device, channels_last: str | bool = "auto",
                       precision: str = "auto", compile: bool = False) -> dict:
    """The fast paths for ``device``: keyword arguments of :class:`AuthorizedModel`.

    ``'auto'`` enables only what was measured faster with equal results (docs/fast_paths.md;
    one CPU thread of a 2-core AMD EPYC with AVX2 and no bf16 instructions, batch 8 at 128x64):

    - ``channels_last``: on for CPU and CUDA, off elsewhere. On the CPU a forward + backward to
      the input was 1.11-1.54x faster (medians of 5 rounds) for each backbone we ship configs
      for (osnet_x0_25, osnet_x1_0, mobilenetv2_x1_0, resnet50), a protect 1.10x (osnet_x0_25)
      and 1.46x (resnet50), with features equal up to float rounding (relative error < 1e-6)
      and gradients of cosine >= 0.9999; on CUDA it selects cuDNN's NHWC kernels (not measured
      here: no GPU was available). Other backbones were not measured; ``'off'`` opts out.
    - ``precision``: ``'tf32'`` on CUDA (TensorFloat-32 matmuls and convolutions; PyTorch's
      defaults already use it for cuDNN convolutions), ``'fp32'`` elsewhere (``'tf32'`` is
      ``'fp32'`` off CUDA). bfloat16 is never chosen: on this CPU without bf16 instructions a
      protect was 3-8x slower with input gradients of cosine 0.95-0.997 to fp32, and whether it
      keeps P2P Rank-1, the constraint and SSIM within tolerance of fp32 on a GPU is not
      measured.
    - ``compile``: never automatic (a compile takes 30-330 s per backbone and shape set).

    Args:
        device: where the model runs (``'cpu'``, ``'cuda'``, ``'cuda:1'``, a device); only its
            type is used, so CUDA need not be available.
        channels_last: ``'auto'``, ``'on'``/True or ``'off'``/False.
        precision: ``'auto'`` or one of :data:`PRECISIONS`.
        compile: whether to ``torch.compile`` the net (no ``'auto'``).

    Returns:
        ``{'channels_last': bool, 'precision': str, 'compile': bool}``.

    Raises:
        ValueError: for a value outside those above (the message lists the valid ones).

    Example:
        >>> resolve_fast_paths("cuda:0")
        {'channels_last': True, 'precision': 'tf32', 'compile': False}
        >>> resolve_fast_paths("cpu", channels_last="off")
        {'channels_last': False, 'precision': 'fp32', 'compile': False}
    """
    kind = torch.device(device).type
    if channels_last == "auto":
        channels_last = kind in AUTO_CHANNELS_LAST_DEVICES
    elif channels_last in ("on", "off"):
        channels_last = channels_last == "on"
    elif not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be one of {CHANNELS_LAST} or a bool, got "
                         f"{channels_last!r}")
    if precision == "auto":
        precision = "tf32" if kind == "cuda" else "fp32"
    return dataclasses.asdict(FastPaths(channels_last, precision, compile))


@contextlib.contextmanager
def allow_tf32() -> Iterator[None]:
    """TensorFloat-32 on for CUDA matmuls and cuDNN convolutions for the block; the previous
    flags are restored.

    Uses the ``fp32_precision`` flags where this PyTorch has them (reading or setting the legacy
    ``allow_tf32`` flags after them raises there), the legacy flags otherwise. Setting them needs
    no GPU; they only act on CUDA.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(getattr(cudnn, "conv", None),
                                                       "fp32_precision"):
        flags, value = [(matmul, "fp32_precision"), (cudnn.conv, "fp32_precision")], "tf32"
    else:
        flags, value = [(matmul, "allow_tf32"), (cudnn, "allow_tf32")], True
    saved = [getattr(owner, name) for owner, name in flags]
    try:
        for owner, name in flags:
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name), previous in zip(flags, saved):
            setattr(owner, name, previous)


def numerics(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a net's forward runs in for ``precision`` (:data:`PRECISIONS`) on ``device``.

    ``'bf16'``/``'fp16'``: autocast to that dtype on ``device``'s type. ``'tf32'``: TF32 on
    (:func:`allow_tf32`) on CUDA, nothing elsewhere. ``'fp32'``: nothing (PyTorch's global
    settings apply, as without fast paths).
    """
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
    if precision == "tf32" and device.type == "cuda":
        return allow_tf32()
    return contextlib.nullcontext()


class _ScaleGradient(torch.autograd.Function):
    """Identity whose backward scales each image's gradient to a peak |g| in [1, 2) by a power of
    two (exact in any float format; at most 2^100 either way, finite in float32) and records the
    scales in ``holder['scale']`` ``(B,)``."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, holder: dict) -> torch.Tensor:
        ctx.holder = holder
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        peak = grad.detach().flatten(1).abs().amax(dim=1).float()
        usable = torch.isfinite(peak) & (peak > 0)
        exponent = torch.floor(torch.log2(peak)).clamp(-100, 100)
        scale = torch.where(usable, torch.exp2(-exponent), torch.ones_like(peak))
        ctx.holder["scale"] = scale
        return grad * scale.to(grad.dtype).view(-1, *([1] * (grad.dim() - 1))), None


class _UnscaleGradient(torch.autograd.Function):
    """Identity whose backward divides each image's gradient by ``holder['scale']`` (set by
    :class:`_ScaleGradient` on the way back)."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, holder: dict) -> torch.Tensor:
        ctx.holder = holder
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        scale = ctx.holder["scale"].to(grad.dtype)
        return grad / scale.view(-1, *([1] * (grad.dim() - 1))), None


def scaled_backward(net: Callable[[torch.Tensor], torch.Tensor],
                    inputs: torch.Tensor) -> torch.Tensor:
    """``net(inputs)`` with the gradient through it scaled per image to a peak |g| near 1 and
    scaled back at ``inputs`` (float16's loss scaling, per image and per call).

    A float16 backward flushes gradients below 6e-8 to zero and overflows above 65504; PixelFade's
    loss near its constraint gives feature gradients of 1e-6 and less (measured on osnet_x0_25:
    input gradients of cosine 0.028 to float32 without scaling, 0.9997 with it; a static scale
    that fixed it overflowed resnet50 at large distances). A power of two is
    exact, so the scaling changes no gradient beyond float16's own rounding, and each image's
    scale is its own.

    Args:
        net: ``(B, ...) -> (B, D)`` returning float32 features (the scale acts on their float32
            gradient, before the backward casts it to float16), run under the caller's autocast.
        inputs: ``(B, ...)`` input of ``net``.
    """
    holder: dict = {}
    return _ScaleGradient.apply(net(_UnscaleGradient.apply(inputs, holder)), holder)


class AuthorizedModel(nn.Module):
    """Wraps a Re-ID model as the authorised feature extractor ``f`` of PixelFade.

    Args:
        model: a torchreid model (or any module returning features in eval mode).
        mean: per-channel normalisation mean applied inside ``forward``.
        std: per-channel normalisation std applied inside ``forward``.
        name: a label recorded in manifests and results (defaults to the class name).
        freeze: set ``requires_grad=False`` on the model's parameters (use False together with
            :func:`frozen` to protect with a model that is still being trained).
        channels_last: convert the model's 4-D parameters and buffers to channels-last memory
            format now (in place; values unchanged) and its inputs on every call.
        precision: one of :data:`PRECISIONS`: ``'fp32'`` (float32 under PyTorch's global
            settings, as without this option; by default cuDNN convolutions use TF32 on
            Ampere and later GPUs, matmuls do not), ``'tf32'`` (TF32 matmuls and convolutions
            on CUDA; the same as ``'fp32'`` on other devices), ``'bf16'`` or ``'fp16'`` (the
            model's forward under ``torch.autocast`` to that dtype; its backward follows the
            forward's dtypes; for float16 each image's gradient is scaled into its range and
            back, :func:`scaled_backward`).
        compile: wrap the model with ``torch.compile`` on the first call (seconds to minutes).

    Shape:
        - Input: ``(B, 3, H, W)`` pixel images in [0, 1].
        - Output: ``(B, D)`` float features (the model's eval-mode output, flattened).

    The wrapped model is frozen (``requires_grad_(False)``) and run in eval mode on every call;
    its own train/eval flags are restored afterwards, so wrapping a model that is being trained
    does not change its training.

    Whatever the fast paths, the features are returned in the inputs' dtype and the gradient
    reaches the inputs in it, so a protector's image state stays float32; autocast and the TF32
    flags hold only during the model's forward and are restored after it.

    Raises:
        ValueError: for a ``precision`` outside :data:`PRECISIONS` or a non-bool option.

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
        channels_last: bool = False,
        precision: str = "fp32",
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.fast_paths = FastPaths(channels_last, precision, compile)
        self.model = model.requires_grad_(False) if freeze else model
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.name = name or type(model).__name__
        self._compiled: nn.Module | None = None

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
        inputs give float64 features, differentiable with respect to the inputs. The fast paths
        apply here (see the class docstring); the device is the inputs'.
        """
        dtype = self.model_dtype()
        inputs_for_net = inputs if dtype is None else inputs.to(dtype)
        if self.fast_paths.channels_last and inputs_for_net.dim() == 4:
            inputs_for_net = inputs_for_net.contiguous(memory_format=torch.channels_last)
        with eval_mode(self.model), numerics(self.fast_paths.precision, inputs.device):
            features = functools.partial(self._features, dtype=inputs.dtype)
            if self.fast_paths.precision == "fp16" and torch.is_grad_enabled():
                return scaled_backward(features, inputs_for_net)
            return features(inputs_for_net)

    def _features(self, inputs: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``(B, D)`` features of the (compiled) net in ``dtype``; the first output of a tuple."""
        features = self._net()(inputs)
        if isinstance(features, (tuple, list)):
            features = features[0]
        return features.flatten(1).to(dtype)

    def _net(self) -> nn.Module:
        """The module that computes features: the model, or its compiled wrapper (made on the
        first call and kept outside the module tree, so ``state_dict`` is unchanged)."""
        if not self.fast_paths.compile:
            return self.model
        if self._compiled is None:
            logger.info("compiling %s with torch.compile (first call)", self.name)
            self.__dict__["_compiled"] = torch.compile(self.model)
        return self._compiled

    def model_dtype(self) -> torch.dtype | None:
        """The dtype the wrapped model computes in; None for a model without float tensors."""
        tensors = itertools.chain(self.model.parameters(), self.model.buffers())
        return next((t.dtype for t in tensors if t.is_floating_point()), None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(self.normalize(images))

    def extra_repr(self) -> str:
        if self.fast_paths.is_plain():
            return f"name={self.name!r}"
        options = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.fast_paths).items())
        return f"name={self.name!r}, {options}"


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
