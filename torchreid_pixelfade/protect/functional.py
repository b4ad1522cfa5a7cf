"""Pure tensor functions shared by the protectors (kornia style: no state, no modules).

Everything here works on any device and batch size and never modifies its inputs. The 8-bit grid
"as stored" has one definition, :func:`torchreid_pixelfade.io.quantize`; :func:`quantize_ste` is
its straight-through twin for optimisation.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence

import torch

from ..io import quantize

Transform = Callable[[torch.Tensor], torch.Tensor]

#: where a batch's random numbers come from: one generator for the whole batch (drawn as one
#: tensor), or one generator per image (image ``i`` drawn from ``generators[i]`` alone).
Generators = torch.Generator | Sequence[torch.Generator]


def is_per_image(generator: Generators | None) -> bool:
    """Whether ``generator`` is one generator per image (not one, or None, for the batch)."""
    return generator is not None and not isinstance(generator, torch.Generator)


def select_generators(generator: Generators, index: torch.Tensor) -> Generators:
    """The generators of the images ``index`` ``(n,)`` of a batch: their own where there is
    one per image, else the batch's one generator."""
    if is_per_image(generator):
        return [generator[i] for i in index.tolist()]
    return generator


#: dtypes the protectors accept: they optimise in the input's dtype (the model runs in its own).
SUPPORTED_DTYPES = (torch.float32, torch.float64)


def check_images(images: torch.Tensor) -> None:
    """Validates a batch of pixel images at a public boundary.

    Half precision is refused rather than converted: the protectors optimise in the input's
    dtype, and half precision is too coarse for it. Its spacing near 1 (float16 1e-3, bfloat16
    8e-3) is of the order of PixelFade's step size 0.01, and it misses the 8-bit grid (``k / 255``
    is off by up to 0.06 of a level in float16, 0.5 in bfloat16, against 1e-5 in float32), so
    the returned image would not be exactly the stored one. Convert with ``images.float()``.

    Args:
        images: expected ``(B, 3, H, W)`` float32 or float64 pixels in [0, 1] (any B, even 0).

    Raises:
        ValueError: for another shape, another dtype, NaN or infinite values, or values outside
            [0, 1] (the message gives what was found).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"Expected images of shape (B, 3, H, W), got {shape}")
    _check_dtype(images.dtype)
    if not images.numel():
        return
    finite = torch.isfinite(images)
    if not finite.all():
        nan = int(images.isnan().sum())
        raise ValueError(f"Expected finite pixel values in [0, 1], got {nan} NaN and "
                         f"{int((~finite).sum()) - nan} infinite value(s)")
    if images.min() < 0 or images.max() > 1:
        raise ValueError(f"Expected pixel values in [0, 1], got [{images.min():.3f}, "
                         f"{images.max():.3f}]")


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype in SUPPORTED_DTYPES:
        return
    if dtype.is_floating_point:
        hint = "images.float() (half precision is too coarse for the steps and the 8-bit grid)"
    else:
        hint = "images.float() / 255 for 8-bit images"
    raise ValueError(f"Expected float32 or float64 images in [0, 1], got dtype {dtype}; "
                     f"convert with {hint}")


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A local generator on ``device``: seeded with ``seed``, or from the OS when None."""
    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbits(63) if seed is None else seed)
    return generator


def key_seed(run_seed: int, key: str) -> int:
    """The seed of one image's generator: SHA-256 of ``f"{run_seed}:{key}"``, 63 bits.

    Stable across processes, machines and Python versions (unlike ``hash``), so an image gets
    the same draws whichever batch, process or run protects it.

    Args:
        run_seed: the protector's run seed.
        key: the image's stable key (e.g. its output path relative to the folder).

    Returns:
        an integer in ``[0, 2**63)``.
    """
    digest = hashlib.sha256(f"{run_seed}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def draw_normal(shape: torch.Size | tuple, generator: Generators | None, device: torch.device,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal values of ``shape`` ``(B, ...)``.

    Args:
        shape: ``(B, ...)``.
        generator: one generator (one draw of the whole shape, as ``torch.randn``; None: the
            global one), or ``B`` generators (image ``i``, of shape ``shape[1:]``, drawn from
            ``generator[i]`` alone, so it does not depend on the other images).
        device: device of the result (the generators' device).
        dtype: float dtype of the result.
    """
    if not is_per_image(generator):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return _per_image(torch.randn, shape, generator, device=device, dtype=dtype)


def draw_uniform(shape: torch.Size | tuple, generator: Generators | None,
                 device: torch.device) -> torch.Tensor:
    """Uniform float32 values in [0, 1) of ``shape`` ``(B, ...)``; ``generator`` as in
    :func:`draw_normal`."""
    if not is_per_image(generator):
        return torch.rand(shape, generator=generator, device=device)
    return _per_image(torch.rand, shape, generator, device=device)


def _per_image(draw: Callable, shape: torch.Size | tuple, generators: Sequence[torch.Generator],
               **kwargs) -> torch.Tensor:
    """``(B, ...)`` whose image ``i`` is ``draw(shape[1:])`` from ``generators[i]``.

    Raises:
        ValueError: when the number of generators is not ``B``.
    """
    if len(generators) != shape[0]:
        raise ValueError(f"Expected one generator per image ({shape[0]}), got {len(generators)}")
    if not len(generators):
        return draw(tuple(shape), **kwargs)
    return torch.stack([draw(tuple(shape[1:]), generator=g, **kwargs) for g in generators])


def feature_distance(features: torch.Tensor, reference: torch.Tensor,
                     reduction: str = "mean") -> torch.Tensor:
    """Per-image squared feature distance, ``(B, D), (B, D) -> (B,)``.

    Args:
        features: ``(B, D)`` features of the protected images.
        reference: ``(B, D)`` features of the originals.
        reduction: ``'mean'`` over dimensions (MSE, the official code's scale) or ``'sum'``
            (squared L2, the paper's).

    Raises:
        ValueError: for another reduction.
    """
    squared = (features - reference).pow(2)
    if reduction == "mean":
        return squared.mean(dim=1)
    if reduction == "sum":
        return squared.sum(dim=1)
    raise ValueError(f"Unknown loss reduction {reduction!r}; choose 'mean' or 'sum'")


def within(distance: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """The feature constraint of paper Eq. 1, ``d(f(x_p), f(x)) <= eps``, elementwise.

    The one check used both while optimising and in the reported ``constraint_met``.

    Args:
        distance: ``(B,)`` (or scalar) feature distances.
        limits: the bounds, broadcastable to ``distance``.

    Returns:
        bool tensor of the broadcast shape.
    """
    return distance <= limits


def quantize_ste(values: torch.Tensor, to_pixels: Transform | None = None,
                 from_pixels: Transform | None = None) -> torch.Tensor:
    """Straight-through 8-bit rounding: forward as stored, backward the identity.

    Forward: ``values`` of the image rounded by :func:`~torchreid_pixelfade.io.quantize`;
    backward: gradient passed through unchanged (one addition in the autograd graph).

    Args:
        values: ``(B, C, H, W)`` pixels in [0, 1], or values in another space when
            ``to_pixels``/``from_pixels`` convert to and from pixels (e.g. a model's
            normalisation).
        to_pixels: maps ``values`` to pixels (identity when None).
        from_pixels: maps pixels back to the space of ``values`` (identity when None).

    Returns:
        ``(B, C, H, W)`` tensor, differentiable with respect to ``values``.
    """
    with torch.no_grad():
        pixels = values if to_pixels is None else to_pixels(values)
        rounded = quantize(pixels)
        offset = (rounded if from_pixels is None else from_pixels(rounded)) - values
    return values + offset


def normalized_momentum(momentum: torch.Tensor, grad: torch.Tensor,
                        factor: float) -> torch.Tensor:
    """Momentum over the per-image mean-|g| normalised gradient (MI-FGSM style).

    ``factor * momentum + grad / mean|grad|``, the mean taken per image over ``(C, H, W)``
    (floored at 1e-12, so a zero gradient stays zero).

    Args:
        momentum: ``(B, C, H, W)`` accumulated momentum.
        grad: ``(B, C, H, W)`` gradient of this step.
        factor: decay of the previous momentum.

    Returns:
        ``(B, C, H, W)`` new momentum (the inputs are not modified).
    """
    scale = grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return factor * momentum + grad / scale
