"""Synthetic pedestrian data and the protected-folder dataset."""
from torchreid_pixelfade.data.synthetic import (
    SyntheticConfig,
    make_synthetic_images,
    make_synthetic_market1501,
)

__all__ = ["SyntheticConfig", "make_synthetic_images", "make_synthetic_market1501"]
