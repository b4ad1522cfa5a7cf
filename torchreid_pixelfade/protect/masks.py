"""Partial-replacement masks of Progressive Pixel Fading, as pure functions.

A set of ``I`` disjoint masks that together cover every value is stored as one integer tensor
``mask_ids`` of the images' shape: value ``k`` of an element means "element belongs to mask k".
Disjointness and coverage therefore hold by construction, and the masks of a batch do not depend
on the batch size: each image gets its own random, exactly balanced partition.
"""
from __future__ import annotations

import torch

MASK_UNITS = ("element", "pixel")


def random_mask_ids(shape: torch.Size | tuple, num_masks: int, unit: str = "element",
                    generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Draws one random partition of each image into ``num_masks`` equal parts.

    Args:
        shape: ``(B, C, H, W)`` of the images.
        num_masks: number of masks ``I`` (>= 1).
        unit: ``'element'``: every (channel, row, column) value is assigned independently
            (official code); ``'pixel'``: the channels of a pixel share their mask.
        generator: local random generator (on ``device``).
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
    order = torch.rand(b, per_image, generator=generator, device=device).argsort(dim=1)
    slots = torch.arange(per_image, device=device) * num_masks // per_image
    mask_ids = torch.empty_like(order).scatter_(1, order, slots.expand(b, -1))
    if unit == "element":
        return mask_ids.view(b, c, h, w)
    return mask_ids.view(b, 1, h, w).expand(b, c, h, w).contiguous()


def replace_values(images: torch.Tensor, noise: torch.Tensor, mask_ids: torch.Tensor,
                   mask_index: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Partial Replacement Operation: writes the noise into one mask of each active image.

    Args:
        images: ``(B, C, H, W)`` current protected images (any space).
        noise: ``(B, C, H, W)`` replacement values (the fixed noise target).
        mask_ids: ``(B, C, H, W)`` partition from :func:`random_mask_ids`.
        mask_index: ``(B,)`` which mask each image replaces now.
        active: ``(B,)`` bool, which images replace at this step.

    Returns:
        ``(new_images, replaced)`` where ``replaced`` is the ``(B, C, H, W)`` bool map of the
        values written.
    """
    replaced = (mask_ids == mask_index.view(-1, 1, 1, 1)) & active.view(-1, 1, 1, 1)
    return torch.where(replaced, noise, images), replaced
