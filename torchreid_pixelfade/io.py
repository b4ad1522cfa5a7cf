"""Safe file I/O: atomic writes, image reading with clear errors, 8-bit PNG conversion.

Nothing here modifies its inputs; every write goes to a temporary file in the target folder and is
moved into place with ``os.replace``, so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import warnings
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image


class ImageReadError(ValueError):
    """An input image that cannot be read; the message names the file and the problem."""


#: How :func:`_atomic_target` names its temporary files: ``.tmp-`` + 8 random characters of
#: ``tempfile``'s alphabet + the target's name. :func:`remove_temp_files` removes only these.
TEMP_PREFIX = ".tmp-"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"[a-z0-9_]{8}.+")


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: set and restore (briefly visible to other threads)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[str]:
    """A temporary file beside ``path`` to write; moved onto ``path`` when the block ends.

    The file gets the mode a file opened normally would (``0o666 & ~umask``), not
    ``mkstemp``'s 0600; on an error it is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        with contextlib.suppress(OSError):  # a file system without modes keeps mkstemp's
            os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def is_temp_file_name(name: str) -> bool:
    """Whether ``name`` is a temporary file name of :func:`_atomic_target`."""
    return bool(_TEMP_NAME.fullmatch(name))


def remove_temp_files(folder: str | os.PathLike) -> list[str]:
    """Removes the temporary files an interrupted write left in ``folder`` and its subfolders.

    Only names of :func:`_atomic_target`'s pattern are touched, links to folders are not
    followed, and nothing outside ``folder`` is visited. Call it only when no other process
    writes into ``folder`` (the store holds its locks).

    Returns:
        The removed paths.
    """
    removed = []
    for parent, _, names in os.walk(os.fspath(folder), followlinks=False):
        for name in names:
            path = os.path.join(parent, name)
            if is_temp_file_name(name) and not os.path.isdir(path):
                os.remove(path)
                removed.append(path)
    return removed


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
    16-bit images (modes ``I;16*``, and ``I`` with values in 0..65535) are scaled to 8 bits
    (``round(v / 257)``), not clipped to near white; wider integer or float images are refused.
    Images of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels are refused as decompression bombs.

    Raises:
        ImageReadError: naming the file and the problem, whatever the decoder's failure.
    """
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return _to_rgb(image, path)
    except ImageReadError:
        raise
    except FileNotFoundError as error:
        raise ImageReadError(f"{path}: file not found") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(f"{path}: too many pixels, refused as a possible decompression "
                             f"bomb ({error})") from error
    except Exception as error:  # any decoder failure on an untrusted file is a read error
        raise ImageReadError(f"{path}: not a readable image ({type(error).__name__}: "
                             f"{error})") from error


def _to_rgb(image: Image.Image, path: str) -> Image.Image:
    """RGB version of a decoded image; 16-bit grey levels scaled to 8 bits."""
    if image.mode.startswith("I;16") or image.mode == "I":
        values = np.asarray(image, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageReadError(f"{path}: {image.mode} image with values outside 0..65535 "
                                 "(not a 16-bit image); convert it to 8 or 16-bit first")
        scaled = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if image.mode == "F":
        raise ImageReadError(f"{path}: floating-point image (mode F) has no defined 8-bit "
                             "scale; convert it to an 8 or 16-bit image first")
    return image.convert("RGB")


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


def encode_png(image: torch.Tensor) -> bytes:
    """The lossless 8-bit PNG file of a ``(3, H, W)`` pixel image in [0, 1]."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: str | os.PathLike, image: torch.Tensor) -> bytes:
    """Stores a ``(3, H, W)`` pixel image in [0, 1] as a lossless 8-bit PNG, atomically.

    Returns:
        The bytes written (to record their size and hash).
    """
    data = encode_png(image)
    atomic_write_bytes(path, data)
    return data
