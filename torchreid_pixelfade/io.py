"""Safe file I/O: atomic writes, image reading with clear errors, 8-bit PNG conversion.

Nothing here modifies its inputs; every write goes to a temporary file in the target folder and is
moved into place with ``os.replace``, so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError


class ImageReadError(ValueError):
    """An input image that cannot be read; the message names the file and the problem."""


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[str]:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    with _atomic_target(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    """Writes ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path``, atomically."""
    with _atomic_target(path) as tmp:
        torch.save(obj, tmp)


def read_image(path: str | os.PathLike) -> Image.Image:
    """Reads an image as RGB, fully decoded.

    Unlike torchreid's ``read_image``, which retries forever on a corrupt file, this fails at once.

    Raises:
        ImageReadError: naming the file, if it is missing, truncated or not an image.
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError as error:
        raise ImageReadError(f"{path}: file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from error


def load_image_tensor(path: str | os.PathLike, height: int, width: int) -> torch.Tensor:
    """Reads an image as a ``(3, H, W)`` float tensor in [0, 1], resized like torchreid's test
    transform (bilinear ``Resize((H, W))``).

    Raises:
        ImageReadError: naming the file when it cannot be read.
    """
    from torchvision.transforms import functional as TF

    image = read_image(path)
    if image.size != (width, height):
        image = TF.resize(image, [height, width])
    return TF.to_tensor(image)


def load_images(paths: Sequence[str | os.PathLike], height: int, width: int) -> torch.Tensor:
    """``(N, 3, H, W)`` pixel tensor of the images at ``paths`` (resized like torchreid)."""
    return torch.stack([load_image_tensor(p, height, width) for p in paths])


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float pixels in [0, 1] -> ``(H, W, 3)`` uint8, rounded to nearest."""
    array = image.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(1, 2, 0).numpy()


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Rounds pixel images to the 8-bit grid, exactly as :func:`write_png` stores them: the one
    definition of "as stored" (protectors use it, or its straight-through form).

    Shape:
        any shape, values clamped to [0, 1] -> same shape on the grid ``k / 255``.
    """
    return images.clamp(0, 1).mul(255).round().div(255)


def write_image_grid(rows: Sequence[torch.Tensor], path: str | os.PathLike) -> None:
    """Writes a PNG grid, one row per ``(K, 3, H, W)`` tensor in [0, 1], 2-px white margins."""
    count, (height, width) = len(rows[0]), rows[0].shape[-2:]
    grid = Image.new("RGB", (count * (width + 4), len(rows) * (height + 4)), "white")
    for row, images in enumerate(rows):
        for column, image in enumerate(images):
            grid.paste(Image.fromarray(to_uint8(image)),
                       (column * (width + 4) + 2, row * (height + 4) + 2))
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def write_png(path: str | os.PathLike, image: torch.Tensor) -> None:
    """Stores a ``(3, H, W)`` pixel image in [0, 1] as a lossless 8-bit PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
