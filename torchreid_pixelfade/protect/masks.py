"""Partial-replacement masks of Progressive Pixel Fading, as pure functions.

A set of ``I`` disjoint masks is stored as one integer tensor ``mask_ids`` of the images' shape:
value ``k`` in ``[0, I)`` of an element means "element belongs to mask k", and ``-1`` "in no
mask, never replaced". Disjointness therefore holds by construction. The drawn masks
(:func:`random_mask_ids`) also cover every value and do not depend on the batch size: each image
gets its own random, exactly balanced partition. Caller-supplied boolean masks (for instance the
official code's, drawn over the flattened batch) are converted by :func:`mask_ids_from_masks`.
"""
from __future__ import annotations

import torch

from .functional import Generators, draw_uniform, is_per_image

MASK_UNITS = ("element", "pixel")


def random_mask_ids(shape: torch.Size | tuple, num_masks: int, unit: str = "element",
                    generator: Generators | None = None,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Draws one random partition of each image into ``num_masks`` equal parts.

    Args:
        shape: ``(B, C, H, W)`` of the images.
        num_masks: number of masks ``I`` (>= 1).
        unit: ``'element'``: every (channel, row, column) value is assigned independently
            (official code); ``'pixel'``: the channels of a pixel share their mask.
        generator: local random generator (on ``device``), or one per image (image ``i``'s
            partition then depends on ``generator[i]`` only); None: the global generator.
        device: device of the result.

    Returns:
        ``(B, C, H, W)`` int64 tensor with values in ``[0, num_masks)``; per image each value
        occurs ``N // I`` or ``N // I + 1`` times (N values per image, or pixels for 'pixel').
    """
    if unit not in MASK_UNITS:
        raise ValueError(f"Unknown mask unit {unit!r}; choose one of {MASK_UNITS}")
    if num_masks < 1:
        raise ValueError(f"num_masks must be >= 1, got {num_masks}")
    b, c, h, w = shape
    per_image = c * h * w if unit == "element" else h * w
    uniform = draw_uniform((b, per_image), generator, device)
    # float32 draws tie (about once per image at 6144 values): a stable sort breaks the ties
    # by position, so with one generator per image the order does not depend on the batch
    order = uniform.argsort(dim=1, stable=is_per_image(generator))
    slots = torch.arange(per_image, device=device) * num_masks // per_image
    mask_ids = torch.empty_like(order).scatter_(1, order, slots.expand(b, -1))
    if unit == "element":
        return mask_ids.view(b, c, h, w)
    return mask_ids.view(b, 1, h, w).expand(b, c, h, w).contiguous()


def mask_ids_from_masks(masks: torch.Tensor, shape: torch.Size | tuple,
                        num_masks: int) -> torch.Tensor:
    """Converts ``I`` disjoint boolean masks into ``mask_ids``, validating them.

    Args:
        masks: ``(I, B, C, H, W)`` bool; ``masks[j]`` marks the values the j-th replacement
            writes. Disjoint; the union need not cover every value (uncovered values are never
            replaced).
        shape: ``(B, C, H, W)`` of the images.
        num_masks: the protector's ``I``.

    Returns:
        ``(B, C, H, W)`` int64 on the masks' device, ``j`` where ``masks[j]`` is set, else -1.

    Raises:
        TypeError: for a non-tensor.
        ValueError: for a non-bool dtype, another shape, or overlapping masks.
    """
    expected = (num_masks, *shape)
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a bool tensor of shape {expected}, got "
                         f"{type(masks).__name__}")
    if masks.dtype != torch.bool:
        raise ValueError(f"masks must be a bool tensor, got dtype {masks.dtype}")
    if tuple(masks.shape) != expected:
        raise ValueError(f"masks must have shape (num_masks, B, C, H, W) = {expected}, got "
                         f"{tuple(masks.shape)}")
    if (masks.sum(dim=0) > 1).any():
        raise ValueError("masks must be disjoint: some values are in more than one mask")
    index = torch.arange(1, num_masks + 1, device=masks.device).view(-1, 1, 1, 1, 1)
    return (masks.long() * index).sum(dim=0) - 1


def replace_values(images: torch.Tensor, noise: torch.Tensor, mask_ids: torch.Tensor,
                   mask_index: torch.Tensor,
                   active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Partial Replacement Operation: writes the noise into one mask of each active image.

    Args:
        images: ``(B, C, H, W)`` current protected images (any space).
        noise: ``(B, C, H, W)`` replacement values (the fixed noise target).
        mask_ids: ``(B, C, H, W)`` mask of each value (:func:`random_mask_ids` or
            :func:`mask_ids_from_masks`; -1: never replaced).
        mask_index: ``(B,)`` which mask each image replaces now.
        active: ``(B,)`` bool, which images replace at this step.

    Returns:
        ``(new_images, replaced)`` where ``replaced`` is the ``(B, C, H, W)`` bool map of the
        values written.
    """
    replaced = (mask_ids == mask_index.view(-1, 1, 1, 1)) & active.view(-1, 1, 1, 1)
    return torch.where(replaced, noise, images), replaced
