"""Tests of the in-memory synthetic image tensor."""
from __future__ import annotations

import torch

from torchreid_pixelfade.data.synthetic import make_synthetic_images


def test_make_synthetic_images() -> None:
    x = make_synthetic_images(5, 64, 32, seed=3)
    assert x.shape == (5, 3, 64, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(x.std()) > 0.05
    assert torch.equal(x, make_synthetic_images(5, 64, 32, seed=3))
    assert not torch.equal(x, make_synthetic_images(5, 64, 32, seed=4))
