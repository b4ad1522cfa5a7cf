"""Protectors: PixelFade and the baselines it is compared with, behind one registry."""
from .avih import AVIH
from .base import (PROTECTORS, ProtectionResult, Protector, build_protector, feature_distance,
                   list_protectors, register_protector)
from .masks import random_mask_ids, replace_values
from .pixelfade import PixelFade
from .simple import Blur, Identity, Mosaic, gaussian_blur, mosaic

__all__ = ["PROTECTORS", "ProtectionResult", "Protector", "build_protector", "feature_distance",
           "list_protectors", "register_protector", "random_mask_ids", "replace_values",
           "PixelFade", "AVIH", "Blur", "Identity", "Mosaic", "gaussian_blur", "mosaic"]
