"""torchreid's own image Re-ID: the evaluation hook, the per-image transform, training."""
from .hook import PixelFadeEvalMixin, ProtectionOptions, enable_pixelfade, normalization_of
from .transforms import PixelFadeTransform, install_transform, split_transform_names

__all__ = ["PixelFadeEvalMixin", "ProtectionOptions", "enable_pixelfade", "normalization_of",
           "PixelFadeTransform", "install_transform", "split_transform_names"]
