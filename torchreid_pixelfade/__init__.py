"""torchreid-pixelfade: privacy-preserving person re-identification for torchreid.

Five lines::

    from torchreid_pixelfade import AuthorizedModel, PixelFade, build_reid_model, load_weights
    net = load_weights(build_reid_model("osnet_x0_25"), "model.pth")
    model = AuthorizedModel(net)                  # normalisation inside, frozen, eval mode
    protected = PixelFade(model, steps=100)(images)   # (B, 3, H, W) in [0, 1] -> same
"""
__version__ = "0.1.0"

from .data.protected import ProtectedImageDataset, register_datasets
from .engine import ProtectionOptions, enable_pixelfade
from .models import AuthorizedModel, build_reid_model, load_weights
from .protect import (PROTECTORS, Blur, Identity, Mosaic, PixelFade, ProtectionResult, Protector,
                      build_protector, list_protectors, register_protector)

register_datasets()

__all__ = ["AuthorizedModel", "build_reid_model", "load_weights", "PROTECTORS", "Blur",
           "Identity", "Mosaic", "PixelFade", "ProtectionResult", "Protector", "build_protector",
           "list_protectors", "register_protector", "ProtectedImageDataset", "register_datasets",
           "ProtectionOptions", "enable_pixelfade"]
