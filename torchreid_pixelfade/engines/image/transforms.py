"""PixelFade as a per-image data transform, and its installation into a torchreid DataManager.

Two ways to protect query/gallery images in torchreid:

* **The evaluation hook** (:func:`torchreid_pixelfade.enable_pixelfade`, or
  ``pixelfade.enabled True``): protects in batches on the model's device, stores the protected
  PNGs and reuses them while the weights do not change, and reports all four settings. Use it
  whenever you evaluate with a torchreid engine.
* **The transform** (:class:`PixelFadeTransform`): protects one image each time a dataset item is
  read, inside a torchvision pipeline. It re-optimises on every read (no cache), runs with batch
  size 1 and in DataLoader workers (keep ``workers=0`` with a CUDA model: CUDA cannot be
  re-initialised in forked workers), and gives P2P only. Use it in pipelines of your own that
  need protected tensors, e.g. to feed another system.

torchreid's ``build_transforms`` ignores unknown names silently, so ``data.transforms`` containing
``'pixelfade'`` is handled by our ``main``: the name is taken out before torchreid sees it, and
after the model is built :func:`install_transform` puts a :class:`PixelFadeTransform` into the
query and gallery datasets of every target (after ``ToTensor``, before ``Normalize``).
"""
from __future__ import annotations

import logging
from typing import Iterable

import torch
from torchvision import transforms as T

from ...models import AuthorizedModel
from ...protect import Protector, build_protector

logger = logging.getLogger(__name__)

TRANSFORM_NAME = "pixelfade"


class PixelFadeTransform:
    """Protects one ``(3, H, W)`` pixel image in [0, 1] (place it after ``ToTensor``).

    Args:
        model: the authorised model (an :class:`AuthorizedModel`, or a plain Re-ID module that
            is then wrapped with ImageNet normalisation).
        protector: registered protector name or a protector object.
        **kwargs: protector hyper-parameters (e.g. ``steps``, ``eps``, ``seed``).

    Example:
        >>> from PIL import Image
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
        ...                           torch.nn.Flatten())
        >>> pipeline = T.Compose([T.Resize((64, 32)), T.ToTensor(),
        ...                       PixelFadeTransform(net, steps=2, seed=0)])
        >>> pipeline(Image.new("RGB", (40, 90))).shape
        torch.Size([3, 64, 32])
    """

    def __init__(self, model: torch.nn.Module | None, protector: str | Protector = "pixelfade",
                 **kwargs) -> None:
        if model is not None and not isinstance(model, AuthorizedModel):
            model = AuthorizedModel(model)
        self.protector = build_protector(protector, model, **kwargs)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            raise ValueError("PixelFadeTransform takes a (3, H, W) tensor in [0, 1]; put it "
                             "after ToTensor")
        device = image.device
        if self.protector.model is not None:
            device = next(self.protector.model.parameters()).device
        return self.protector(image.unsqueeze(0).to(device))[0].to(image.device)

    def __repr__(self) -> str:
        return f"PixelFadeTransform({self.protector!r})"


def with_transform(compose: T.Compose, transform) -> T.Compose:
    """A copy of ``compose`` with ``transform`` inserted right after its ``ToTensor``."""
    steps = list(compose.transforms)
    positions = [i for i, step in enumerate(steps) if isinstance(step, T.ToTensor)]
    if not positions:
        raise ValueError(f"No ToTensor step in {compose}; cannot place {transform}")
    steps.insert(positions[0] + 1, transform)
    return T.Compose(steps)


def install_transform(datamanager, transform, sides: Iterable[str] = ("query", "gallery")) -> None:
    """Puts ``transform`` into the test datasets of every target of a torchreid DataManager.

    The datasets hold their own reference to the test transform, so it is replaced there (not
    on ``datamanager.transform_te``).
    """
    for name, loaders in datamanager.test_loader.items():
        for side in sides:
            dataset = loaders[side].dataset
            dataset.transform = with_transform(dataset.transform, transform)
            logger.info("%s %s: per-image transform %r", name, side, transform)


def split_transform_names(names: Iterable[str] | str | None) -> tuple[list[str], bool]:
    """Separates our ``'pixelfade'`` from torchreid's augmentation names."""
    names = [names] if isinstance(names, str) else list(names or [])
    return [n for n in names if n.lower() != TRANSFORM_NAME], any(
        n.lower() == TRANSFORM_NAME for n in names)
