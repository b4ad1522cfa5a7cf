"""Writing synthetic visible-infrared datasets in the exact SYSU-MM01 and RegDB layouts.

Both writers are idempotent and atomic like :func:`~.market1501.make_synthetic_market1501`: every
file goes through :func:`torchreid_pixelfade.io.atomic_write_bytes`, the generator record
``synthetic.json`` is written last, and a complete dataset made with the same config and
generator version is never rewritten; a folder that the generator did not make is never touched.

``<root>/SYSU-MM01/`` (:func:`make_synthetic_sysu_mm01`)::

    cam1 .. cam6/<pid:04d>/<nnnn>.jpg      RGB cams 1, 2, 4, 5; thermal cams 3, 6; nnnn from 0001
    exp/{train,val,test,available}_id.txt  one line of comma-separated ids
    synthetic.json

Ids ``1 .. N`` are split into train / val / test by a seeded permutation (so the splits
interleave, as SYSU's do). Each (id, camera) folder is dropped with ``missing_camera_prob``, but
every id keeps at least one IR camera and one indoor RGB camera (1 or 2), so every id has both
modalities and indoor search has a match for every test id.

``<root>/RegDB/`` (:func:`make_synthetic_regdb`)::

    Visible/<k>/<gender>_<front|back>_v_<frame:05d>_<k>.bmp
    Thermal/<k>/<gender>_<front|back>_t_<frame:05d>_<k>.bmp
    idx/{train,test}_{visible,thermal}_{1..10}.txt   "<path relative to RegDB/> <label>"
    synthetic.json

RegDB's pairs are co-registered: the visible and thermal image of one frame come from the same
per-image generator and viewpoint, so they show the same pose and silhouette. Each trial splits
the persons by a seeded permutation into halves; labels are ``0 .. N/2 - 1`` in increasing person
order within each half. SYSU's visible and IR images come from different cameras, so they share
the identity (shape and thermal attributes) but not the per-image pose.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import pathlib

import numpy as np
from PIL import Image

from ...io import atomic_write_bytes
from .appearance import (
    CameraStyle,
    camera_rng,
    identity_rng,
    image_rng,
    sample_camera,
    sample_identity,
)
from .build import build
from .market1501 import JPEG_QUALITY
from .render import render_person
from .thermal import (
    ThermalCameraStyle,
    render_thermal,
    sample_thermal_camera,
    sample_thermal_identity,
    thermal_camera_rng,
    thermal_identity_rng,
)

__all__ = [
    "VI_GENERATOR_VERSION",
    "SYSU_DATASET_DIR",
    "REGDB_DATASET_DIR",
    "SyntheticSysuConfig",
    "SyntheticRegDBConfig",
    "make_synthetic_sysu_mm01",
    "make_synthetic_regdb",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the drawing or the layout changes, so an older cached dataset is rebuilt.
VI_GENERATOR_VERSION = 1
_GENERATOR_NAME = "torchreid_pixelfade.data.synthetic.sysu_regdb"
SYSU_DATASET_DIR = "SYSU-MM01"
REGDB_DATASET_DIR = "RegDB"
_SYSU_RGB_CAMERAS = (1, 2, 4, 5)
_SYSU_IR_CAMERAS = (3, 6)
_SYSU_INDOOR_RGB = (1, 2)
_SYSU_FOLDERS = tuple(f"cam{c}" for c in range(1, 7)) + ("exp",)
_SYSU_ID_FILES = ("train_id.txt", "val_id.txt", "test_id.txt", "available_id.txt")
_REGDB_FOLDERS = ("Visible", "Thermal", "idx")
_REGDB_TRIALS = range(1, 11)
# Stream tags of this module (appearance.py uses 1..5, thermal.py 101..102).
_TAG_SYSU_SPLIT = 111
_TAG_SYSU_PRESENCE = 112
_TAG_REGDB_PERSON = 121
_TAG_REGDB_TRIAL = 122
# RegDB's visible / thermal camera numbers (the thermal one has its own radiometry only).
_REGDB_VISIBLE_CAM = 1
_REGDB_THERMAL_CAM = 2


# --------------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------------
def _check_image_options(height: int, width: int, ir_channels: int) -> None:
    """Raises ValueError for too small images or an IR channel count other than 1 or 3."""
    if height < 16 or width < 8:
        raise ValueError("images must be at least 16x8 pixels")
    if ir_channels not in (1, 3):
        raise ValueError(f"ir_channels must be 1 or 3, got {ir_channels}")


@dataclasses.dataclass(frozen=True)
class SyntheticSysuConfig:
    """Size and seed of a synthetic SYSU-MM01.

    Attributes:
        num_train_ids: Ids listed in ``exp/train_id.txt``.
        num_val_ids: Ids in ``exp/val_id.txt`` (at least 1; readers train on train + val).
        num_test_ids: Ids in ``exp/test_id.txt``.
        images_per_id_per_camera: Images in every kept ``cam<c>/<pid>`` folder (1 .. 9999).
        missing_camera_prob: Probability in ``[0, 1)`` that an (id, camera) folder is dropped
            (subject to every id keeping an IR and an indoor RGB camera).
        height: Image height in pixels (at least 16).
        width: Image width in pixels (at least 8).
        ir_channels: Channels of the IR JPEGs: 3 (grey in three equal channels, as AGW reads
            them) or 1 (single-channel, as SYSU's README describes them).
        seed: Seed of every random choice; equal configs give byte-identical datasets.
    """

    num_train_ids: int = 32
    num_val_ids: int = 8
    num_test_ids: int = 20
    images_per_id_per_camera: int = 3
    missing_camera_prob: float = 0.2
    height: int = 128
    width: int = 64
    ir_channels: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.num_train_ids, self.num_val_ids, self.num_test_ids) < 1:
            raise ValueError("num_train_ids, num_val_ids and num_test_ids must be >= 1")
        if self.num_ids > 9999:
            raise ValueError("SYSU-MM01 folders have 4-digit ids: at most 9999 ids")
        if not 1 <= self.images_per_id_per_camera <= 9999:
            raise ValueError("images_per_id_per_camera must be in 1..9999 (4-digit file names)")
        if not 0.0 <= self.missing_camera_prob < 1.0:
            raise ValueError("missing_camera_prob must be in [0, 1)")
        _check_image_options(self.height, self.width, self.ir_channels)

    @property
    def num_ids(self) -> int:
        """Number of ids over the three splits (ids ``1 .. num_ids``)."""
        return self.num_train_ids + self.num_val_ids + self.num_test_ids


@dataclasses.dataclass(frozen=True)
class SyntheticRegDBConfig:
    """Size and seed of a synthetic RegDB (10 trials, as the real one).

    Attributes:
        num_ids: Persons (even, at least 2; every trial trains on half and tests on the other).
        images_per_id: Visible/thermal pairs per person (RegDB has 10).
        height: Image height in pixels (RegDB's crops are 128x64).
        width: Image width in pixels.
        ir_channels: Channels of the thermal BMPs: 3 (as RegDB's) or 1.
        seed: Seed of every random choice; equal configs give byte-identical datasets.
    """

    num_ids: int = 20
    images_per_id: int = 10
    height: int = 128
    width: int = 64
    ir_channels: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_ids < 2 or self.num_ids % 2:
            raise ValueError("num_ids must be even and >= 2 (half train, half test per trial)")
        if not 1 <= self.images_per_id or self.num_ids * self.images_per_id > 99_999:
            raise ValueError("images_per_id must be >= 1, with at most 99999 frames in all")
        _check_image_options(self.height, self.width, self.ir_channels)


# --------------------------------------------------------------------------------------------------
# Shared file handling
# --------------------------------------------------------------------------------------------------
def _encode(image: np.ndarray, fmt: str, channels: int = 3) -> bytes:
    """``(H, W, 3)`` uint8 image -> JPEG / BMP file contents, grey (first channel) if 1 channel."""
    pil = Image.fromarray(image if channels == 3 else np.ascontiguousarray(image[..., 0]))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        pil.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        pil.save(buffer, format=fmt)
    return buffer.getvalue()


def _record(config: object, counts: dict[str, int], files: list[str]) -> dict:
    """The generator record of a dataset made with ``config``: ``counts`` images per folder and
    the non-image ``files`` (relative paths) it holds."""
    return {"generator": _GENERATOR_NAME, "generator_version": VI_GENERATOR_VERSION,
            "config": dataclasses.asdict(config), "counts": counts, "files": files}


def _person(seed: int, pid: int):
    """``(identity, thermal attributes)`` of ``pid`` from its seeded streams."""
    identity = sample_identity(pid, identity_rng(seed, pid))
    return identity, sample_thermal_identity(identity, thermal_identity_rng(seed, pid))


# --------------------------------------------------------------------------------------------------
# SYSU-MM01
# --------------------------------------------------------------------------------------------------
def _sysu_splits(config: SyntheticSysuConfig) -> tuple[list[int], list[int], list[int]]:
    """Sorted ``(train, val, test)`` ids: a seeded permutation of ``1 .. num_ids``."""
    order = np.random.default_rng([config.seed, _TAG_SYSU_SPLIT]).permutation(config.num_ids) + 1
    a = config.num_train_ids
    b = a + config.num_val_ids
    return sorted(map(int, order[:a])), sorted(map(int, order[a:b])), sorted(map(int, order[b:]))


def _sysu_presence(config: SyntheticSysuConfig) -> dict[int, tuple[int, ...]]:
    """``{pid: cameras with a folder}``: each dropped with ``missing_camera_prob``, but every id
    keeps an IR camera and an indoor RGB camera."""
    rng = np.random.default_rng([config.seed, _TAG_SYSU_PRESENCE])
    presence = {}
    for pid in range(1, config.num_ids + 1):
        kept = {c for c, u in zip(range(1, 7), rng.random(6)) if u >= config.missing_camera_prob}
        if not kept & set(_SYSU_IR_CAMERAS):
            kept.add(int(rng.choice(_SYSU_IR_CAMERAS)))
        if not kept & set(_SYSU_INDOOR_RGB):
            kept.add(int(rng.choice(_SYSU_INDOOR_RGB)))
        presence[pid] = tuple(sorted(kept))
    return presence


def _sysu_counts(config: SyntheticSysuConfig) -> dict[str, int]:
    """Images per ``cam<c>`` folder (and 0 image files in ``exp``)."""
    counts = {folder: 0 for folder in _SYSU_FOLDERS}
    for cams in _sysu_presence(config).values():
        for cam in cams:
            counts[f"cam{cam}"] += config.images_per_id_per_camera
    return counts


def _sysu_cameras(seed: int) -> tuple[dict[int, CameraStyle], dict[int, ThermalCameraStyle]]:
    """Viewpoints of cameras 1..6 and the radiometry of the IR cameras 3 and 6."""
    views = {c: sample_camera(c, camera_rng(seed, c)) for c in range(1, 7)}
    thermal = {c: sample_thermal_camera(c, thermal_camera_rng(seed, c)) for c in _SYSU_IR_CAMERAS}
    return views, thermal


def _write_sysu_images(data_dir: pathlib.Path, config: SyntheticSysuConfig) -> int:
    """Renders and writes every ``cam<c>/<pid>/<nnnn>.jpg``; returns the number written."""
    views, thermal_cams = _sysu_cameras(config.seed)
    h, w, written = config.height, config.width, 0
    for pid, cams in _sysu_presence(config).items():
        identity, thermal = _person(config.seed, pid)
        for cam in cams:
            folder = data_dir / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir()
            for index in range(config.images_per_id_per_camera):
                rng = image_rng(config.seed, pid, cam, index)
                if cam in _SYSU_IR_CAMERAS:
                    image = render_thermal(identity, thermal, views[cam], thermal_cams[cam], rng,
                                           h, w)
                    data = _encode(image, "JPEG", config.ir_channels)
                else:
                    data = _encode(render_person(identity, views[cam], rng, h, w), "JPEG")
                atomic_write_bytes(folder / f"{index + 1:04d}.jpg", data)
                written += 1
    return written


def _write_sysu_exp(data_dir: pathlib.Path, config: SyntheticSysuConfig) -> None:
    """Writes ``exp/{train,val,test,available}_id.txt``, one comma-separated line each."""
    train, val, test = _sysu_splits(config)
    lists = (train, val, test, sorted(train + val + test))
    for name, ids in zip(_SYSU_ID_FILES, lists):
        atomic_write_bytes(data_dir / "exp" / name, (",".join(map(str, ids)) + "\n").encode())


def make_synthetic_sysu_mm01(
    root: str | os.PathLike, config: SyntheticSysuConfig = SyntheticSysuConfig()
) -> pathlib.Path:
    """Writes a synthetic SYSU-MM01 under ``<root>/SYSU-MM01`` (layout: module docstring).

    RGB cameras 1, 2, 4, 5 use the visible renderer; IR cameras 3 and 6 the thermal renderer with
    the same identities (``config.height x config.width`` JPEGs). Idempotent; atomic files.

    Args:
        root: Dataset root (the folder holding ``SYSU-MM01``).
        config: Size and seed.

    Returns:
        The ``SYSU-MM01`` folder.

    Raises:
        FileExistsError: ``root`` holds a SYSU-MM01 dataset not made by this generator.
    """
    data_dir = pathlib.Path(root) / SYSU_DATASET_DIR
    record = _record(config, _sysu_counts(config), [f"exp/{name}" for name in _SYSU_ID_FILES])

    def write() -> int:
        written = _write_sysu_images(data_dir, config)
        _write_sysu_exp(data_dir, config)
        return written

    return build(data_dir, record, _SYSU_FOLDERS, "SYSU-MM01", write)


# --------------------------------------------------------------------------------------------------
# RegDB
# --------------------------------------------------------------------------------------------------
def _regdb_gender(seed: int, person: int) -> str:
    """``"male"`` or ``"female"`` for the file names of ``person`` (a seeded coin)."""
    coin = np.random.default_rng([seed, _TAG_REGDB_PERSON, person]).random()
    return "male" if coin < 0.5 else "female"


def _regdb_names(config: SyntheticRegDBConfig, person: int, index: int,
                 front: bool) -> tuple[str, str]:
    """``(visible, thermal)`` paths relative to ``RegDB/`` of image ``index`` of ``person``."""
    facing = "front" if front else "back"
    frame = (person - 1) * config.images_per_id + index + 1
    stem = f"{_regdb_gender(config.seed, person)}_{facing}_{{}}_{frame:05d}_{person}.bmp"
    return f"Visible/{person}/{stem.format('v')}", f"Thermal/{person}/{stem.format('t')}"


def _write_regdb_pair(data_dir: pathlib.Path, config: SyntheticRegDBConfig, person: int,
                      index: int, cameras: tuple[CameraStyle, ThermalCameraStyle]
                      ) -> tuple[str, str]:
    """Renders and writes one co-registered visible/thermal pair (same pose and silhouette).

    Returns:
        The ``(visible, thermal)`` paths relative to ``RegDB/``.
    """
    view, thermal_cam = cameras
    identity, thermal = _person(config.seed, person)
    stream = (config.seed, person, _REGDB_VISIBLE_CAM, index)
    front = bool(image_rng(*stream).random() < view.front_prob)  # the renderers' first draw
    visible = render_person(identity, view, image_rng(*stream), config.height, config.width)
    infrared = render_thermal(identity, thermal, view, thermal_cam, image_rng(*stream),
                              config.height, config.width)
    names = _regdb_names(config, person, index, front)
    atomic_write_bytes(data_dir / names[0], _encode(visible, "BMP"))
    atomic_write_bytes(data_dir / names[1], _encode(infrared, "BMP", config.ir_channels))
    return names


def _write_regdb_images(data_dir: pathlib.Path, config: SyntheticRegDBConfig
                        ) -> dict[int, list[tuple[str, str]]]:
    """Writes every pair of ``Visible/`` and ``Thermal/``.

    Returns:
        ``{person: [(visible relpath, thermal relpath), ...]}`` in frame order.
    """
    cameras = (sample_camera(_REGDB_VISIBLE_CAM, camera_rng(config.seed, _REGDB_VISIBLE_CAM)),
               sample_thermal_camera(_REGDB_THERMAL_CAM,
                                     thermal_camera_rng(config.seed, _REGDB_THERMAL_CAM)))
    names = {}
    for person in range(1, config.num_ids + 1):
        (data_dir / "Visible" / str(person)).mkdir()
        (data_dir / "Thermal" / str(person)).mkdir()
        names[person] = [_write_regdb_pair(data_dir, config, person, index, cameras)
                         for index in range(config.images_per_id)]
    return names


def _regdb_lines(names: dict[int, list[tuple[str, str]]], persons: list[int], modality: int
                 ) -> bytes:
    """Idx file contents: ``<relpath> <label>`` for ``persons`` (labels by increasing person)."""
    lines = [f"{pair[modality]} {label}\n"
             for label, person in enumerate(sorted(persons)) for pair in names[person]]
    return "".join(lines).encode()


def _write_regdb_idx(data_dir: pathlib.Path, config: SyntheticRegDBConfig,
                     names: dict[int, list[tuple[str, str]]]) -> None:
    """Writes ``idx/{train,test}_{visible,thermal}_{1..10}.txt`` from per-trial permutations."""
    half = config.num_ids // 2
    for trial in _REGDB_TRIALS:
        order = np.random.default_rng([config.seed, _TAG_REGDB_TRIAL, trial])
        perm = [int(p) + 1 for p in order.permutation(config.num_ids)]
        for split, persons in (("train", perm[:half]), ("test", perm[half:])):
            for modality, word in enumerate(("visible", "thermal")):
                atomic_write_bytes(data_dir / "idx" / f"{split}_{word}_{trial}.txt",
                                   _regdb_lines(names, persons, modality))


def make_synthetic_regdb(
    root: str | os.PathLike, config: SyntheticRegDBConfig = SyntheticRegDBConfig()
) -> pathlib.Path:
    """Writes a synthetic RegDB under ``<root>/RegDB`` (layout: module docstring).

    Every person has ``images_per_id`` co-registered visible/thermal pairs (3-channel BMPs of
    ``config.height x config.width``); the 10 trials' idx files split the persons in halves.
    Idempotent; atomic files.

    Args:
        root: Dataset root (the folder holding ``RegDB``).
        config: Size and seed.

    Returns:
        The ``RegDB`` folder.

    Raises:
        FileExistsError: ``root`` holds a RegDB dataset not made by this generator.
    """
    data_dir = pathlib.Path(root) / REGDB_DATASET_DIR
    per_modality = config.num_ids * config.images_per_id
    idx = [f"idx/{split}_{word}_{trial}.txt" for trial in _REGDB_TRIALS
           for split in ("train", "test") for word in ("visible", "thermal")]
    record = _record(config, {"Visible": per_modality, "Thermal": per_modality, "idx": 0}, idx)

    def write() -> int:
        names = _write_regdb_images(data_dir, config)
        _write_regdb_idx(data_dir, config, names)
        return 2 * sum(len(pairs) for pairs in names.values())

    return build(data_dir, record, _REGDB_FOLDERS, "RegDB", write)
