"""The per-image transform's historical import path; it lives in :mod:`.engines.image`."""
from .engines.image.transforms import PixelFadeTransform, install_transform

__all__ = ["PixelFadeTransform", "install_transform"]
