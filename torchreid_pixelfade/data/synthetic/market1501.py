"""Writing a synthetic pedestrian dataset in Market-1501 layout (idempotent, atomic files).

The folder written by :func:`make_synthetic_market1501` is read unchanged by torchreid's own
``Market1501`` dataset::

    <root>/market1501/Market-1501-v15.09.15/
        bounding_box_train/0001_c1s1_000000_00.jpg
        query/...
        bounding_box_test/...
        synthetic.json          (the generator record, written last)
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import pathlib
import shutil
import time

import numpy as np
from PIL import Image

from ...io import atomic_write_bytes, atomic_write_json

from .appearance import (
    CameraStyle,
    PersonIdentity,
    SyntheticConfig,
    camera_rng,
    identity_rng,
    image_rng,
    sample_camera,
    sample_identity,
    split_rng,
)
from .render import render_person

__all__ = [
    "GENERATOR_VERSION",
    "GENERATOR_RECORD",
    "DATASET_DIR",
    "DATA_SUBDIR",
    "SPLITS",
    "JPEG_QUALITY",
    "make_synthetic_market1501",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the drawing changes, so a cached dataset from an older generator is rebuilt.
GENERATOR_VERSION = 1
#: Generator name stored in the record (kept from the single-module generator).
GENERATOR_NAME = "torchreid_pixelfade.data.synthetic"

DATASET_DIR = "market1501"
DATA_SUBDIR = "Market-1501-v15.09.15"
SPLITS = ("bounding_box_train", "query", "bounding_box_test")
#: File recording the generator, its version, config and split sizes; its presence (written
#: last) marks a complete dataset. Not to be confused with a protected folder's manifest.
GENERATOR_RECORD = "synthetic.json"
_IN_PROGRESS = ".synthetic_in_progress"
JPEG_QUALITY = 95


def _jpeg_bytes(image: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 RGB -> JPEG file contents at :data:`JPEG_QUALITY`."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _generator_record(config: SyntheticConfig) -> dict:
    """The contents of :data:`GENERATOR_RECORD` for a dataset made with ``config``."""
    return {
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "config": dataclasses.asdict(config),
        "counts": {
            "bounding_box_train": config.num_train,
            "query": config.num_query,
            "bounding_box_test": config.num_gallery,
        },
    }


def _count_images(folder: pathlib.Path) -> int | None:
    """Number of ``*.jpg`` files in ``folder`` (hidden temporary files excluded); None if absent."""
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    return sum(1 for name in names if name.endswith(".jpg") and not name.startswith("."))


def _is_complete(data_dir: pathlib.Path, config: SyntheticConfig) -> bool:
    """Whether ``data_dir`` holds a complete dataset made with ``config``."""
    try:
        recorded = json.loads((data_dir / GENERATOR_RECORD).read_text())
    except (OSError, ValueError):
        return False
    expected = _generator_record(config)
    if recorded != expected:
        return False
    return all(
        _count_images(data_dir / split) == count for split, count in expected["counts"].items()
    )


def _prepare_dir(data_dir: pathlib.Path) -> None:
    """Empties the split folders of an earlier synthetic dataset; refuses to touch foreign data.

    Raises:
        FileExistsError: ``data_dir`` has non-empty split folders but no sign of the generator.
    """
    ours = (data_dir / GENERATOR_RECORD).exists() or (data_dir / _IN_PROGRESS).exists()
    existing = [
        data_dir / split for split in SPLITS
        if (data_dir / split).is_dir() and any((data_dir / split).iterdir())
    ]
    if existing and not ours:
        raise FileExistsError(
            f"{data_dir} already holds a Market-1501 dataset that was not made by the synthetic "
            "generator; refusing to overwrite it (choose another root)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    # An interrupted rebuild must not look complete.
    (data_dir / GENERATOR_RECORD).unlink(missing_ok=True)
    atomic_write_bytes(data_dir / _IN_PROGRESS, b"")
    for split in SPLITS:
        if (data_dir / split).is_dir():
            shutil.rmtree(data_dir / split)
        (data_dir / split).mkdir()


def _write_identity(
    data_dir: pathlib.Path,
    config: SyntheticConfig,
    identity: PersonIdentity,
    cameras: list[CameraStyle],
    query_picker: np.random.Generator,
    first_frame: int,
) -> int:
    """Writes all images of one identity in every camera; returns the next free frame number.

    Training identities go to ``bounding_box_train``. For a test identity one image per camera,
    picked by ``query_picker``, is the query and the others go to the gallery.
    """
    is_train = identity.pid <= config.num_train_ids
    frame = first_frame
    for camera in cameras:
        count = config.images_per_id_per_camera
        query_index = -1 if is_train else int(query_picker.integers(count))
        for index in range(count):
            rng = image_rng(config.seed, identity.pid, camera.camid, index)
            image = render_person(identity, camera, rng, config.height, config.width)
            if is_train:
                split = "bounding_box_train"
            else:
                split = "query" if index == query_index else "bounding_box_test"
            name = f"{identity.pid:04d}_c{camera.camid}s1_{frame:06d}_00.jpg"
            atomic_write_bytes(data_dir / split / name, _jpeg_bytes(image))
            frame += 1
    return frame


def _write_images(data_dir: pathlib.Path, config: SyntheticConfig) -> int:
    """Renders and writes every image of the dataset; returns the number written."""
    seed = config.seed
    cameras = [sample_camera(c, camera_rng(seed, c)) for c in range(1, config.num_cameras + 1)]
    query_picker = split_rng(seed)
    frame = 0
    for pid in range(1, config.num_train_ids + config.num_test_ids + 1):
        identity = sample_identity(pid, identity_rng(seed, pid))
        frame = _write_identity(data_dir, config, identity, cameras, query_picker, frame)
    return frame


def make_synthetic_market1501(
    root: str | os.PathLike, config: SyntheticConfig = SyntheticConfig()
) -> pathlib.Path:
    """Writes a synthetic pedestrian dataset in Market-1501 layout under ``root``.

    The images go to ``<root>/market1501/Market-1501-v15.09.15/{bounding_box_train,query,
    bounding_box_test}/PPPP_cCs1_FFFFFF_00.jpg`` (``config.height x config.width`` RGB JPEGs),
    which torchreid's ``Market1501`` dataset reads with ``root=<root>``. Identities
    ``1 .. num_train_ids`` are for training, the next ``num_test_ids`` for testing. Every identity
    has ``images_per_id_per_camera`` images in every camera; for the test identities one image per
    camera is the query and the rest is the gallery, so each query has gallery matches in all
    other cameras.

    The call is idempotent: when a complete dataset made with the same config (and generator
    version) is already there, recorded in :data:`GENERATOR_RECORD` (``synthetic.json``) which is
    written last, it returns without rewriting anything. Otherwise an earlier synthetic dataset at
    that place is replaced; a Market-1501 folder that the generator did not make is never
    overwritten. Every file is written atomically (temporary file + ``os.replace``).

    Args:
        root: Dataset root, as passed to torchreid (``ImageDataManager(root=...)``).
        config: Dataset size and seed.

    Returns:
        The ``Market-1501-v15.09.15`` folder.

    Raises:
        FileExistsError: ``root`` holds a Market-1501 dataset not made by this generator.
    """
    data_dir = pathlib.Path(root) / DATASET_DIR / DATA_SUBDIR
    if _is_complete(data_dir, config):
        logger.info("Synthetic Market-1501 already complete at %s; not rewriting", data_dir)
        return data_dir
    start = time.perf_counter()
    _prepare_dir(data_dir)
    written = _write_images(data_dir, config)
    atomic_write_json(data_dir / GENERATOR_RECORD, _generator_record(config))
    (data_dir / _IN_PROGRESS).unlink(missing_ok=True)
    logger.info(
        "Wrote synthetic Market-1501 (%d train ids, %d test ids, %d cameras, %d images, %dx%d) "
        "to %s in %.1f s",
        config.num_train_ids, config.num_test_ids, config.num_cameras, written, config.height,
        config.width, data_dir, time.perf_counter() - start,
    )
    return data_dir
