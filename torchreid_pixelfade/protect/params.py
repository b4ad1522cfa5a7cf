"""Hyper-parameter declarations: each protector lists its knobs once, as a frozen dataclass.

A protector's ``Params`` dataclass is the single declaration of its hyper-parameters: names,
types, defaults and one line of documentation each. Constructors, ``hparams()`` (what manifests
record) and the config module are all derived from it::

    @hyperparameters
    class BlurParams(HyperParameters):
        '''Hyper-parameters of :class:`Blur`.'''

        sigma: float | None = hparam(None, "Gaussian standard deviation in pixels.")
        quantize: bool = hparam(True, "round outputs to the 8-bit grid, as stored.")

``dataclasses.fields(BlurParams)`` then gives each field's ``name``, ``type``, ``default`` and
``metadata['doc']``.
"""
from __future__ import annotations

import dataclasses
import numbers
import operator
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def hparam(default: Any, doc: str) -> Any:
    """A dataclass field with a default and its documentation (``metadata['doc']``)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def hyperparameters(cls: type[T]) -> type[T]:
    """Class decorator: a frozen, keyword-only dataclass whose docstring lists its fields."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    lines = [f"        {field.name}: {field.metadata.get('doc', '')}"
             for field in dataclasses.fields(cls)]
    cls.__doc__ = f"{(cls.__doc__ or '').rstrip()}\n\n    Attributes:\n" + "\n".join(lines)
    return cls


class HyperParameters:
    """Base of the ``Params`` dataclasses: coerces numbers, then runs :meth:`_validate`.

    Fields annotated exactly ``float`` are converted with ``float()`` and fields annotated exactly
    ``int`` must hold an integral value (``5.0`` becomes ``5``), so YAML or command-line values
    give the same ``hparams()`` as Python literals. Optional fields (``float | None``) are kept
    as given.
    """

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = _coerce(type(self).__name__, field, getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        self._validate()

    def _validate(self) -> None:
        """Checks choices and ranges; raises ``ValueError`` naming the field."""

    def _check_range(self, name: str, low: float | None = None, high: float | None = None, *,
                     low_open: bool = False, high_open: bool = False) -> None:
        """Checks that field ``name`` lies in a range; None (an unset optional field) passes.

        Args:
            name: the field.
            low: lower bound, inclusive unless ``low_open`` (None: unbounded).
            high: upper bound, inclusive unless ``high_open`` (None: unbounded).
            low_open: exclude ``low`` itself.
            high_open: exclude ``high`` itself.

        Raises:
            ValueError: naming the class, the field and the accepted range, for a value outside
                it or NaN (every comparison with NaN is false).
            TypeError: for a value that is not a real number.
        """
        value = getattr(self, name)
        if value is None:
            return
        if not isinstance(value, numbers.Real):
            raise TypeError(f"{type(self).__name__}.{name} must be a number, got {value!r}")
        above = low is None or (value > low if low_open else value >= low)
        below = high is None or (value < high if high_open else value <= high)
        if not (above and below):
            accepted = _range_text(name, low, high, low_open, high_open)
            raise ValueError(f"{type(self).__name__}: need {accepted}, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raises ``ValueError`` naming ``name`` and the valid choices when ``value`` is not one."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; choose one of {tuple(choices)}")


def _range_text(name: str, low: float | None, high: float | None, low_open: bool,
                high_open: bool) -> str:
    """``'0 <= momentum < 1'``, ``'eps >= 0'``, ``'decay <= 1'``: a range as an inequality."""
    low_text = None if low is None else f"{low:g} {'<' if low_open else '<='} "
    high_text = None if high is None else f" {'<' if high_open else '<='} {high:g}"
    if low_text and high_text:
        return f"{low_text}{name}{high_text}"
    if low_text:
        return f"{name} {'>' if low_open else '>='} {low:g}"
    return f"{name}{high_text}"


def make_params(params_cls: type[T], kwargs: dict, owner: str) -> T:
    """``params_cls(**kwargs)``, with an error naming unknown keys and listing the valid ones.

    Raises:
        TypeError: for keys that are not fields of ``params_cls`` (as Python does for an
            unexpected keyword argument).
    """
    valid = [field.name for field in dataclasses.fields(params_cls)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(f"{owner} got unknown hyper-parameter(s) {unknown}; valid: {valid}")
    return params_cls(**kwargs)


def _coerce(owner: str, field: dataclasses.Field, value: Any) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    try:
        if kind == "float":
            return float(value)
        if kind == "int":
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return operator.index(value)
    except (TypeError, ValueError):
        expected = "a number" if kind == "float" else "an integer"
        raise TypeError(f"{owner}.{field.name} must be {expected}, got {value!r}") from None
    return value
