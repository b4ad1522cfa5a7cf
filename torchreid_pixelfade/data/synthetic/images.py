"""Synthetic pedestrians as an in-memory tensor (for tests and quick experiments)."""
from __future__ import annotations

import numpy as np
import torch

from .appearance import camera_rng, identity_rng, image_rng, sample_camera, sample_identity
from .render import render_person

__all__ = ["make_synthetic_images"]

#: Cameras the images cycle through.
_NUM_CAMERAS = 4


def make_synthetic_images(
    n: int, height: int = 128, width: int = 64, seed: int = 0
) -> torch.Tensor:
    """Renders ``n`` pedestrian images (distinct identities, cameras cycled) as a tensor.

    Image ``i`` shows identity ``i + 1`` in camera ``i % 4 + 1`` (first image of that identity and
    camera in the seeded streams of :mod:`.appearance`).

    Args:
        n: Number of images.
        height: Image height in pixels.
        width: Image width in pixels.
        seed: Seed of identities, cameras and per-image nuisance.

    Returns:
        ``(n, 3, height, width)`` float32 tensor with values in ``[0, 1]``.
    """
    cameras = [sample_camera(c, camera_rng(seed, c)) for c in range(1, _NUM_CAMERAS + 1)]
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        pid = i + 1
        identity = sample_identity(pid, identity_rng(seed, pid))
        camera = cameras[i % _NUM_CAMERAS]
        rng = image_rng(seed, pid, camera.camid, 0)
        out[i] = render_person(identity, camera, rng, height, width)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
