"""Features for evaluation, always from images as stored and read back."""
from __future__ import annotations

import torch

from ..models import AuthorizedModel
from ..store import ProtectedFolder


@torch.no_grad()
def extract_features(model: AuthorizedModel, images: torch.Tensor, batch_size: int = 128,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """Features ``(N, D)`` (on CPU) of pixel images ``(N, 3, H, W)`` in [0, 1], in batches on
    ``device``."""
    chunks = [model(images[i:i + batch_size].to(device)).cpu()
              for i in range(0, len(images), batch_size)]
    return torch.cat(chunks)


def folder_side(model: AuthorizedModel, folder: ProtectedFolder, split: str,
                batch_size: int = 128, device: str | torch.device = "cpu") -> dict:
    """One side (query or gallery) of a protected folder, read back from disk.

    Returns:
        ``{'features': {'original': (N, D), 'protected': (N, D)}, 'labels': (pids, camids),
        'pixels': {'original': (N, 3, H, W), 'protected': ...}}``.

    Raises:
        ValueError: if the folder holds no image of ``split``.
    """
    if not folder.entries(split):
        raise ValueError(f"{folder.path}: no protected {split} images in the manifest")
    protected, original = folder.load_pairs(split)
    pixels = {"protected": protected, "original": original}
    return {"features": {form: extract_features(model, images, batch_size, device)
                         for form, images in pixels.items()},
            "labels": folder.labels(split), "pixels": pixels}
