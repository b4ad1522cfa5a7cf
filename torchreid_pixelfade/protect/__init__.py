"""Protectors: PixelFade and the baselines it is compared with, behind one registry."""
from .avih import AVIH, AVIHParams
from .base import (PROTECTORS, ProtectionResult, Protector, build_protector, feature_distance,
                   list_protectors, protector_params, register_protector)
from .masks import random_mask_ids, replace_values
from .pixelfade import PixelFade, PixelFadeParams
from .simple import (Blur, BlurParams, Identity, IdentityParams, Mosaic, MosaicParams, Noise,
                     NoiseParams,
                     gaussian_blur, mosaic)

__all__ = ["PROTECTORS", "ProtectionResult", "Protector", "build_protector", "feature_distance",
           "list_protectors", "protector_params", "register_protector", "random_mask_ids",
           "replace_values", "PixelFade", "PixelFadeParams", "AVIH", "AVIHParams", "Blur",
           "BlurParams", "Identity", "IdentityParams", "Mosaic", "MosaicParams", "Noise", "NoiseParams",
           "gaussian_blur", "mosaic"]
