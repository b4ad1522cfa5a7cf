"""The pix2pix U-Net generator used by the official PixelFade recovery attack.

``UNet(width=64, depth=7)`` is pix2pix's ``unet_128`` (``UnetGenerator(3, 3, 7, ngf=64,
norm_layer=BatchNorm2d, use_dropout=False)``): ``depth`` down-samplings by 4x4 convolutions of
stride 2, LeakyReLU(0.2) before every down level except the outermost, BatchNorm on every level
except the outermost and the innermost, an up path of ReLU + 4x4 transposed convolution +
BatchNorm, skip concatenations, and an outermost transposed convolution with bias followed by Tanh.
Channels double per level from ``width`` up to ``8 * width``. Weights are initialised like
pix2pix's ``init_weights("normal", 0.02)``: convolutions N(0, 0.02) with zero bias, BatchNorm
weights N(1, 0.02) with zero bias. The module tree mirrors pix2pix's (``model.model.0`` ...), so
the state-dict keys are the same as those of the official generator.

As in pix2pix the down-path LeakyReLU is in place, so the skip connection of every inner level
carries the *activated* features (a quirk of the official code kept on purpose).

Deliberate difference from the official attack: this network works in **pixel space**. Its input
is the protected image in [0, 1] (mapped internally to [-1, 1] by ``2x - 1``) and its output is
``(tanh + 1) / 2`` in [0, 1]. The official code feeds ImageNet-normalised images and compares the
raw Tanh output with the normalised original, whose values reach about [-2.1, 2.6]: a Tanh output
cannot leave [-1, 1], so the official network cannot reproduce dark or saturated pixels at all.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet", "init_weights", "max_depth"]

#: Channel multiplier cap: level ``i`` has ``width * min(2 ** i, 8)`` channels.
MAX_MULTIPLIER = 8


def max_depth(height: int, width: int, limit: int = 7) -> int:
    """The largest U-Net depth <= ``limit`` whose ``2 ** depth`` divides ``height`` and ``width``.

    Raises:
        ValueError: if not even one down-sampling fits (an odd height or width).
    """
    depth = 0
    while depth < limit and height % 2 ** (depth + 1) == 0 and width % 2 ** (depth + 1) == 0:
        depth += 1
    if depth == 0:
        raise ValueError(f"image size {height}x{width}: a U-Net needs a height and width "
                         f"divisible by 2")
    return depth


def _channels(width: int, level: int) -> int:
    return width * min(2 ** level, MAX_MULTIPLIER)


class _SkipBlock(nn.Module):
    """One pix2pix ``UnetSkipConnectionBlock`` (BatchNorm, no dropout).

    Shape: ``(B, outer or in_channels, H, W) -> (B, 2 * outer, H, W)`` for inner levels (input and
    output concatenated) and ``(B, in_channels, H, W) -> (B, outer, H, W)`` for the outermost.
    """

    def __init__(self, outer: int, inner: int, in_channels: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        in_channels = outer if in_channels is None else in_channels
        downconv = nn.Conv2d(in_channels, inner, kernel_size=4, stride=2, padding=1, bias=False)
        up_in = inner if submodule is None else 2 * inner
        if outermost:
            upconv = nn.ConvTranspose2d(up_in, outer, kernel_size=4, stride=2, padding=1)
            down = [downconv]
            up = [nn.ReLU(True), upconv, nn.Tanh()]
        else:
            upconv = nn.ConvTranspose2d(up_in, outer, kernel_size=4, stride=2, padding=1,
                                        bias=False)
            down = [nn.LeakyReLU(0.2, True), downconv]
            if submodule is not None:
                down.append(nn.BatchNorm2d(inner))
            up = [nn.ReLU(True), upconv, nn.BatchNorm2d(outer)]
        middle = [] if submodule is None else [submodule]
        self.model = nn.Sequential(*down, *middle, *up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


def init_weights(net: nn.Module, gain: float = 0.02,
                 generator: torch.Generator | None = None) -> nn.Module:
    """pix2pix's ``normal`` initialisation: conv weights N(0, gain), BatchNorm weights N(1, gain),
    all biases 0. Returns ``net``."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, gain, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain, generator=generator)
            nn.init.zeros_(module.bias)
    return net


class UNet(nn.Module):
    """pix2pix U-Net (``unet_128`` for ``width=64, depth=7``) mapping pixel images to pixel images.

    Args:
        in_channels: channels of the input (protected) image.
        out_channels: channels of the output (recovered) image.
        width: channels of the first level (pix2pix's ``ngf``); 64 officially.
        depth: number of down-samplings (pix2pix's ``num_downs``), >= 1; 7 officially.
            Image height and width must be divisible by ``2 ** depth`` (e.g. depth 5 at 64x32).

    Shape:
        ``(B, in_channels, H, W)`` in [0, 1] -> ``(B, out_channels, H, W)`` in [0, 1].
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 64,
                 depth: int = 7) -> None:
        super().__init__()
        if depth < 1 or width < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"UNet: depth, width and channels must be >= 1, got depth={depth}, "
                             f"width={width}, in_channels={in_channels}, "
                             f"out_channels={out_channels}")
        self.depth, self.width = depth, width
        block = None
        for level in range(depth - 1, 0, -1):
            block = _SkipBlock(_channels(width, level - 1), _channels(width, level),
                               submodule=block)
        self.model = _SkipBlock(out_channels, width, in_channels=in_channels, submodule=block,
                                outermost=True)
        init_weights(self)

    def check_size(self, height: int, width: int) -> None:
        """Raises ValueError unless ``height`` and ``width`` are divisible by ``2 ** depth``."""
        factor = 2 ** self.depth
        if height % factor or width % factor:
            raise ValueError(f"UNet of depth {self.depth}: image size {height}x{width} is not "
                             f"divisible by 2**{self.depth} = {factor}; use depth <= "
                             f"{_safe_max_depth(height, width)} or resize the images")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Recovers images.

        Args:
            x: ``(B, in_channels, H, W)`` pixel images in [0, 1].

        Returns:
            ``(B, out_channels, H, W)`` pixel images in [0, 1] (``(tanh + 1) / 2``).
        """
        if x.dim() != 4:
            raise ValueError(f"UNet: expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        self.check_size(*x.shape[-2:])
        return (self.model(x * 2 - 1) + 1) / 2


def _safe_max_depth(height: int, width: int) -> int:
    try:
        return max_depth(height, width, limit=64)
    except ValueError:
        return 0
