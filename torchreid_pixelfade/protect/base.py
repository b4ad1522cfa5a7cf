"""The protector interface and the one registry of protectors.

A protector is built from the authorised model and its hyper-parameters and called on a batch of
pixel images in [0, 1]::

    protector = build_protector("pixelfade", model, steps=100)
    protected = protector(images)            # (B, 3, H, W) in [0, 1]
    result = protector.protect(images)        # images + per-image diagnostics
    result = protector.protect(images, keys)  # each image's draws seeded by (seed, its key)

Each protector declares its hyper-parameters once, as the dataclass ``Params``
(:mod:`.params`); :func:`protector_params` gives it by registered name, so a config module can
generate its options from ``dataclasses.fields``.
"""
from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..io import quantize as quantize_8bit
from ..models import AuthorizedModel
from .functional import (Generators, check_images, feature_distance, key_seed, make_generator,
                         within)
from .params import HyperParameters, make_params

PROTECTORS: dict[str, type[Protector]] = {}


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


def _registered(name: str) -> type[Protector]:
    if name not in PROTECTORS:
        raise ValueError(f"Unknown protector {name!r}; choose one of {list_protectors()}")
    return PROTECTORS[name]


def protector_params(name: str) -> type[HyperParameters]:
    """The ``Params`` dataclass of a registered protector (its hyper-parameters and defaults).

    Example::

        for field in dataclasses.fields(protector_params("blur")):
            print(field.name, field.type, field.default, field.metadata["doc"])

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
    """
    return _registered(name).Params


def build_protector(name: str | Protector, model: AuthorizedModel | None = None,
                    **kwargs) -> Protector:
    """Builds a registered protector; a protector object is returned unchanged.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
        TypeError: for a keyword that is not a hyper-parameter of the protector.
    """
    if isinstance(name, Protector):
        return name
    return _registered(name)(model, **kwargs)


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


class Protector:
    """Base class: a template that checks, protects, rounds as stored and measures.

    Subclasses set ``Params`` (a :func:`~.params.hyperparameters` dataclass with at least a
    ``quantize`` field, and ``seed`` if they draw random numbers) and implement
    :meth:`_protect`, or :meth:`_protect_with` if they draw random numbers; they may override
    :meth:`_check` and :meth:`_limits`. Hyper-parameters are read as
    ``protector.params.<name>``; ``protector.<name>`` is a read-only alias.

    Randomness: the run seed is ``params.seed``, or when None (or absent) a random 63-bit
    number drawn when the protector is built and recorded nowhere. Without ``keys``, a batch's
    draws come from one local generator per device, seeded with the run seed and advancing
    across calls, so they depend on the order and grouping of the batches. With ``keys`` (one
    stable string per image, as the store passes), image ``i``'s draws come from its own
    generator seeded by :func:`~.functional.key_seed` ``(run seed, keys[i])``: with a seed they
    are the same whichever batch, batch size, process or run protects the image; without one
    they stay unpredictable. The draws also depend on the device type (CPU and CUDA generators
    differ).

    Args:
        model: the authorised model; optional for protectors that do not optimise, which then
            use it only for the distance diagnostic.
        **kwargs: the hyper-parameters, fields of ``Params`` (defaults for the others).

    Raises:
        ValueError: without a model for a protector that needs one, or for invalid values.
        TypeError: for a keyword that is not a field of ``Params``.
    """

    name = "base"
    Params: type[HyperParameters]
    requires_model = False

    def __init__(self, model: AuthorizedModel | None = None, **kwargs: Any) -> None:
        if model is None and self.requires_model:
            raise ValueError(f"{type(self).__name__} needs the authorised model")
        self.model = model
        self.params = make_params(self.Params, kwargs, type(self).__name__)
        self._generators: dict[torch.device, torch.Generator] = {}
        seed = getattr(self.params, "seed", None)
        self._run_seed = secrets.randbits(63) if seed is None else seed

    def hparams(self) -> dict:
        """Hyper-parameters recorded in manifests (JSON-serialisable)."""
        return dataclasses.asdict(self.params)

    # ------------------------------------------------------------------ template

    def protect(self, images: torch.Tensor,
                keys: Sequence[str] | None = None) -> ProtectionResult:
        """Protects ``(B, 3, H, W)`` pixel images in [0, 1]; returns images and diagnostics.

        The images are float32 or float64 (the result has their dtype); an empty batch gives an
        empty result.

        Args:
            images: ``(B, 3, H, W)`` pixels in [0, 1].
            keys: optional stable key of each image (``B`` strings, e.g. its output path): each
                image's random draws then come from its own generator seeded by (run seed,
                key), so they do not depend on the batch (see the class docstring). Ignored by
                protectors that draw nothing.

        Raises:
            TypeError: for ``keys`` that is not a sequence of strings.
            ValueError: for invalid images (:func:`check_images`), images the model cannot
                take (e.g. too small for its downsampling), or ``keys`` not one per image.
        """
        self._check(images)
        keys = check_keys(keys, len(images))
        if not len(images):
            return self._empty_result(images)
        reference = self._reference(images)
        generator = self._generators_for(images.device, keys)
        return self.finish(self._protect_with(images, reference, generator), reference)

    @torch.no_grad()
    def _reference(self, images: torch.Tensor) -> torch.Tensor | None:
        """``(B, D)`` features of the original ``images``, or None without a model.

        Raises:
            ValueError: when the model fails on the batch (a ``RuntimeError`` of its forward,
                e.g. a pooling layer on images too small for it), naming the model and size.
        """
        if self.model is None:
            return None
        try:
            return self.model(images)
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as error:
            raise ValueError(_model_failure(self.model, images, error)) from error

    def _empty_result(self, images: torch.Tensor) -> ProtectionResult:
        """The result of an empty batch: no image, and each diagnostic the protector reports
        (``distance`` with a model, ``constraint_met`` where it has limits) of shape ``(0,)``."""
        if self.model is None:
            return ProtectionResult(images.clone())
        distance = images.new_zeros(0)
        met = None
        if self._limits(images.new_zeros(0, 1)) is not None:
            met = torch.zeros(0, dtype=torch.bool, device=images.device)
        return ProtectionResult(images.clone(), distance, met)

    @torch.no_grad()
    def finish(self, draft: ProtectionResult | torch.Tensor,
               reference: torch.Tensor | None) -> ProtectionResult:
        """Assembles the returned result from a protector's draft.

        The images are clipped to [0, 1] and, with ``quantize``, rounded as stored; their
        distance to ``reference`` is measured under the protector's loss reduction, and checked
        with :func:`within` against :meth:`_limits` where the protector has limits.

        Args:
            draft: the protector's output: a result whose ``images`` are ``(B, 3, H, W)``
                pixels (any range; ``replaced_fraction`` is passed through), or the images.
            reference: ``(B, D)`` features of the originals, or None without a model.
        """
        if isinstance(draft, torch.Tensor):
            draft = ProtectionResult(draft)
        protected = draft.images.detach().clamp(0, 1)
        if self.params.quantize:
            protected = quantize_8bit(protected)
        if reference is None:
            return ProtectionResult(protected, replaced_fraction=draft.replaced_fraction)
        reduction = getattr(self.params, "loss_reduction", "mean")
        distance = feature_distance(self.model(protected), reference, reduction)
        limits = self._limits(reference)
        met = None if limits is None else within(distance, limits)
        return ProtectionResult(protected, distance, met, draft.replaced_fraction)

    # ------------------------------------------------------------------ hooks

    def _check(self, images: torch.Tensor) -> None:
        """Validates the input batch (shape, dtype, range)."""
        check_images(images)

    def _protect(self, images: torch.Tensor,
                 reference: torch.Tensor | None) -> ProtectionResult | torch.Tensor:
        """The protection itself, returning a draft for :meth:`finish`.

        Args:
            images: ``(B, 3, H, W)`` pixels in [0, 1].
            reference: ``(B, D)`` features of the originals, or None without a model.

        Returns:
            ``images`` ``(B, 3, H, W)`` pixels (clipped and rounded later) and, optionally,
            ``replaced_fraction``; the other fields are filled in by :meth:`finish`.
        """
        raise NotImplementedError

    def _protect_with(self, images: torch.Tensor, reference: torch.Tensor | None,
                      generator: Generators) -> ProtectionResult | torch.Tensor:
        """:meth:`_protect` given where the batch's random numbers come from.

        Protectors that draw random numbers override this (and draw with
        :func:`~.functional.draw_normal` or :func:`~.functional.draw_uniform`, which take
        either kind); the others implement :meth:`_protect` only.

        Args:
            images: ``(B, 3, H, W)`` pixels in [0, 1].
            reference: ``(B, D)`` features of the originals, or None without a model.
            generator: the protector's generator on the images' device, or one generator per
                image (:meth:`_generators_for`).
        """
        return self._protect(images, reference)

    def _limits(self, reference: torch.Tensor) -> torch.Tensor | None:
        """Per-image bound ``(B,)`` on the feature distance; None for protectors without one."""
        return None

    def _generator(self, device: torch.device) -> torch.Generator:
        """The protector's local generator on ``device``, created on first use.

        Seeded from ``params.seed`` (from the OS when None or absent); it advances across
        calls, so batches get different noise.
        """
        if device not in self._generators:
            seed = getattr(self.params, "seed", None)
            self._generators[device] = make_generator(seed, device)
        return self._generators[device]

    def _generators_for(self, device: torch.device,
                        keys: Sequence[str] | None) -> Generators:
        """The batch's source of random numbers on ``device``.

        Without ``keys`` the protector's :meth:`_generator` (as before keys existed); with
        them a new generator per image, seeded by :func:`~.functional.key_seed` ``(run seed,
        key)``.
        """
        if keys is None:
            return self._generator(device)
        return [make_generator(key_seed(self._run_seed, key), device) for key in keys]

    # ------------------------------------------------------------------ attributes

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and name in _field_names(params):
            return getattr(params, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _field_names(getattr(type(self), "Params", None)):
            raise AttributeError(f"{name!r} is a hyper-parameter of {type(self).__name__}; "
                                 f"build a new protector to change it")
        super().__setattr__(name, value)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Protected images only, ``(B, 3, H, W)`` in [0, 1]: ``protect(images).images``."""
        return self.protect(images).images

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({params})"


def check_keys(keys: Sequence[str] | None, batch: int) -> list[str] | None:
    """Validates the images' keys; returns them as a list (or None).

    Raises:
        TypeError: for keys that are not a sequence of strings (a single string included).
        ValueError: for a number of keys other than ``batch``.
    """
    if keys is None:
        return None
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
        raise TypeError(f"keys must be a sequence of strings, one per image, got "
                        f"{type(keys).__name__}")
    keys = list(keys)
    wrong = [key for key in keys if not isinstance(key, str)]
    if wrong:
        raise TypeError(f"keys must be strings, got {type(wrong[0]).__name__} {wrong[0]!r}")
    if len(keys) != batch:
        raise ValueError(f"Expected one key per image ({batch}), got {len(keys)}")
    return keys


def _model_failure(model: torch.nn.Module, images: torch.Tensor, error: RuntimeError) -> str:
    """The message of a model that failed on a batch: which model, which images, why."""
    name = getattr(model, "name", type(model).__name__)
    height, width = images.shape[-2:]
    return (f"The authorised model {name!r} failed on {len(images)} image(s) of {height}x{width} "
            f"({images.dtype}, {images.device}): {error}. Re-ID backbones downsample 16-32x, so "
            f"images far below their input size (typically 256x128 or 128x64) fail this way; "
            f"resize them to the model's input size.")


def _field_names(params: Any) -> set[str]:
    if params is None or not dataclasses.is_dataclass(params):
        return set()
    return {field.name for field in dataclasses.fields(params)}
