"""The evaluation hook's historical import path; it lives in :mod:`.engines.image.hook`."""
from .engines.image.hook import PixelFadeEvalMixin, ProtectionOptions, enable_pixelfade

__all__ = ["PixelFadeEvalMixin", "ProtectionOptions", "enable_pixelfade"]
