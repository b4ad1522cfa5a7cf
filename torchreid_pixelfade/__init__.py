"""torchreid-pixelfade: privacy-preserving person re-identification for torchreid.

Five lines::

    from torchreid_pixelfade import AuthorizedModel, PixelFade, build_reid_model, load_weights
    net = load_weights(build_reid_model("osnet_x0_25"), "model.pth")
    model = AuthorizedModel(net)                  # normalisation inside, frozen, eval mode
    protected = PixelFade(model, steps=100)(images)   # (B, 3, H, W) in [0, 1] -> same

The protectors and the model wrapper import only torch; the torchreid integration (evaluation
hook, transform, protected dataset) is imported on first use of its names.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .models import AuthorizedModel, build_reid_model, load_weights
from .protect import (AVIH, Blur, Identity, Mosaic, PixelFade, ProtectionResult, Protector,
                      build_protector, list_protectors, register_protector)
from .store import ProtectedFolder

#: Names imported on first access (they load torchreid).
_LAZY = {
    "enable_pixelfade": ".engines.image.hook",
    "ProtectionOptions": ".engines.image.hook",
    "PixelFadeTransform": ".engines.image.transforms",
    "ProtectedImageDataset": ".data.protected",
    "register_datasets": ".data.protected",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["AuthorizedModel", "build_reid_model", "load_weights", "AVIH", "Blur", "Identity",
           "Mosaic", "PixelFade", "ProtectionResult", "Protector", "build_protector",
           "list_protectors", "register_protector", "ProtectedFolder", *_LAZY]
