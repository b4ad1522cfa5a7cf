"""Writing synthetic text-to-image datasets in the exact CUHK-PEDES, ICFG-PEDES and RSTPReid
layouts (engines.md sections 1.1 to 1.3 and 5.1).

Images come from the visible renderer (:func:`~.render.render_person`) as JPEGs; captions from
the persons' known attributes (:mod:`.captions`). Every writer is idempotent and atomic like
:func:`~.market1501.make_synthetic_market1501`: every file goes through
:func:`torchreid_pixelfade.io.atomic_write_bytes`, the generator record ``synthetic.json`` is
written last, a complete dataset made with the same config and generator version is never
rewritten, and a folder the generator did not make is never touched.

``<root>/CUHK-PEDES/`` (:func:`make_synthetic_cuhk_pedes`)::

    imgs/<source>/<file>.jpg   source folders as in the real set (CUHK01, CUHK03, Market,
                               cam_a, cam_b, train_query, test_query), names never parsed
    reid_raw.json              [{"split", "captions", "file_path", "processed_tokens", "id"}]

    json ids 1 .. T are training, then val, then test ids; 2 captions per image.

``<root>/ICFG-PEDES/`` (:func:`make_synthetic_icfg_pedes`)::

    imgs/{train,test}/<pid4>/<pid4>_<idx3>_<cam2>_<date><period>_<frame>_0.jpg
    ICFG-PEDES.json (or ICFG_PEDES.json)  same keys as reid_raw.json; splits train / test

    json ids 0 .. T-1 are training, then test ids; 1 caption per image. As in MSMT17, the
    ``imgs/train|test`` folder and the ``<pid4>`` folder number are storage, not the split or
    the id: some training persons are stored under ``imgs/test/`` and some test persons under
    ``imgs/train/``, and each folder numbers its persons from 0.

``<root>/RSTPReid/`` (:func:`make_synthetic_rstpreid`)::

    imgs/<id:04d>_c<cam>_<frame:04d>.jpg  (flat)
    data_captions.json          [{"id", "img_path", "captions", "split"}]

    json ids 0 .. T-1 training, then val, then test; each image from another camera; 2 captions.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import pathlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from ...io import atomic_write_bytes, atomic_write_json
from .appearance import (
    CameraStyle,
    PersonIdentity,
    camera_rng,
    identity_rng,
    image_rng,
    sample_camera,
    sample_identity,
)
from .captions import caption_rng, make_captions, processed_tokens
from .build import build
from .market1501 import JPEG_QUALITY
from .render import render_person

__all__ = [
    "PEDES_GENERATOR_VERSION",
    "CUHK_PEDES_DIR",
    "ICFG_PEDES_DIR",
    "RSTPREID_DIR",
    "ICFG_JSON_NAMES",
    "SyntheticPedesConfig",
    "SyntheticCuhkPedesConfig",
    "SyntheticIcfgPedesConfig",
    "SyntheticRstpReidConfig",
    "make_synthetic_cuhk_pedes",
    "make_synthetic_icfg_pedes",
    "make_synthetic_rstpreid",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the drawing, the captions or the layout change (an old cache is rebuilt).
PEDES_GENERATOR_VERSION = 1
_GENERATOR_NAME = "torchreid_pixelfade.data.synthetic.pedes"
CUHK_PEDES_DIR = "CUHK-PEDES"
ICFG_PEDES_DIR = "ICFG-PEDES"
RSTPREID_DIR = "RSTPReid"
#: The two spellings of ICFG-PEDES's annotation file (code reads the first, READMEs draw the
#: second).
ICFG_JSON_NAMES = ("ICFG-PEDES.json", "ICFG_PEDES.json")
_CUHK_JSON = "reid_raw.json"
_RSTP_JSON = "data_captions.json"
_IMGS = "imgs"
_CUHK_SOURCES = ("CUHK01", "CUHK03", "Market", "cam_a", "cam_b", "train_query", "test_query")
_ICFG_PERIODS = ("morning", "noon", "afternoon")
# Stream tags of this module (appearance.py 1..5, thermal.py 101.., sysu_regdb 111.., captions 131).
_TAG_LAYOUT = 141
_TAG_FOLDER = 142


# --------------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SyntheticPedesConfig:
    """Size and seed of a synthetic text-to-image dataset.

    Attributes:
        num_train_ids: Training persons (at least 1).
        num_val_ids: Val persons (0 allowed; ICFG-PEDES has no val split and requires 0).
        num_test_ids: Test persons (at least 1).
        images_per_id: Images per person (at least 1; at most ``num_cameras``, every image of a
            person is from another camera).
        captions_per_image: Captions per image (at least 1).
        num_cameras: Cameras (1 .. 15, MSMT17's count).
        height: Image height in pixels (at least 16).
        width: Image width in pixels (at least 8).
        seed: Seed of every random choice; equal configs give byte-identical datasets.
    """

    num_train_ids: int = 24
    num_val_ids: int = 4
    num_test_ids: int = 12
    images_per_id: int = 3
    captions_per_image: int = 2
    num_cameras: int = 6
    height: int = 128
    width: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_train_ids < 1 or self.num_test_ids < 1 or self.num_val_ids < 0:
            raise ValueError("need >= 1 train and test ids and >= 0 val ids")
        if not 1 <= self.num_cameras <= 15:
            raise ValueError("num_cameras must be in 1..15")
        if not 1 <= self.images_per_id <= self.num_cameras:
            raise ValueError("images_per_id must be in 1..num_cameras (one camera per image)")
        if self.captions_per_image < 1:
            raise ValueError("captions_per_image must be >= 1")
        if self.height < 16 or self.width < 8:
            raise ValueError("images must be at least 16x8 pixels")
        if self.num_ids * self.images_per_id > 9999:
            raise ValueError("at most 9999 images (4-digit frame numbers)")

    @property
    def num_ids(self) -> int:
        """Persons over all splits."""
        return self.num_train_ids + self.num_val_ids + self.num_test_ids

    @property
    def num_images(self) -> int:
        """Images written."""
        return self.num_ids * self.images_per_id

    def split_of(self, person: int) -> str:
        """Split of person ``0 .. num_ids - 1``: train, then val, then test."""
        if person < self.num_train_ids:
            return "train"
        return "val" if person < self.num_train_ids + self.num_val_ids else "test"


@dataclasses.dataclass(frozen=True)
class SyntheticCuhkPedesConfig(SyntheticPedesConfig):
    """CUHK-PEDES defaults: train / val / test ids, 2 captions per image."""


@dataclasses.dataclass(frozen=True)
class SyntheticIcfgPedesConfig(SyntheticPedesConfig):
    """ICFG-PEDES defaults: no val split, 1 caption per image, 15 cameras.

    Attributes:
        json_name: One of :data:`ICFG_JSON_NAMES`.
    """

    num_val_ids: int = 0
    captions_per_image: int = 1
    num_cameras: int = 15
    json_name: str = ICFG_JSON_NAMES[0]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_val_ids != 0:
            raise ValueError("ICFG-PEDES has only train and test splits: num_val_ids must be 0")
        if self.json_name not in ICFG_JSON_NAMES:
            raise ValueError(f"json_name must be one of {ICFG_JSON_NAMES}, got "
                             f"{self.json_name!r}")


@dataclasses.dataclass(frozen=True)
class SyntheticRstpReidConfig(SyntheticPedesConfig):
    """RSTPReid defaults: 5 images per person from 5 of 15 cameras, 2 captions per image."""

    images_per_id: int = 5
    num_cameras: int = 15


# --------------------------------------------------------------------------------------------------
# Shared: persons, images, idempotent build
# --------------------------------------------------------------------------------------------------
def _jpeg(image: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 RGB -> JPEG file contents."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class _Shot:
    """One image to write: person (0-based), its index, camera and frame number."""

    person: int
    index: int
    camid: int
    frame: int


def _shots(config: SyntheticPedesConfig) -> list[list[_Shot]]:
    """Per person, its images: distinct cameras (seeded), frames numbered through the set."""
    rng = np.random.default_rng([config.seed, _TAG_LAYOUT])
    shots, frame = [], 0
    for person in range(config.num_ids):
        cams = rng.permutation(config.num_cameras)[:config.images_per_id] + 1
        shots.append([_Shot(person, k, int(cam), frame + k) for k, cam in enumerate(cams)])
        frame += config.images_per_id
    return shots


class _Renderer:
    """Renders a person's images and captions from the seeded streams (cameras cached)."""

    def __init__(self, config: SyntheticPedesConfig) -> None:
        self.config = config
        self._cameras: dict[int, CameraStyle] = {}

    def identity(self, person: int) -> PersonIdentity:
        return sample_identity(person + 1, identity_rng(self.config.seed, person + 1))

    def image(self, identity: PersonIdentity, shot: _Shot) -> bytes:
        c = self.config
        if shot.camid not in self._cameras:
            self._cameras[shot.camid] = sample_camera(shot.camid, camera_rng(c.seed, shot.camid))
        rng = image_rng(c.seed, identity.pid, shot.camid, shot.index)
        return _jpeg(render_person(identity, self._cameras[shot.camid], rng, c.height, c.width))

    def captions(self, identity: PersonIdentity, shot: _Shot) -> list[str]:
        rng = caption_rng(self.config.seed, identity.pid, shot.index)
        return make_captions(identity, rng, self.config.captions_per_image)


def _record(what: str, config: SyntheticPedesConfig, json_name: str) -> dict:
    """The generator record: config, image count under ``imgs/`` and the annotation file."""
    return {"generator": _GENERATOR_NAME, "generator_version": PEDES_GENERATOR_VERSION,
            "dataset": what, "config": dataclasses.asdict(config),
            "counts": {_IMGS: config.num_images}, "files": [json_name]}


def _build(data_dir: pathlib.Path, record: dict, what: str, json_names: tuple[str, ...],
           write: Callable[[], list[dict]]) -> pathlib.Path:
    """Writes the images and the annotation file (every spelling removed first) unless
    complete (see :func:`.build.build`)."""
    def write_all() -> str:
        entries = write()
        atomic_write_json(data_dir / record["files"][0], entries)
        return f"{len(entries)} images, {sum(len(e['captions']) for e in entries)} captions"

    return build(data_dir, record, (_IMGS,), what, write_all, json_names)


def _write_images(data_dir: pathlib.Path, config: SyntheticPedesConfig,
                  name_of: Callable[[_Shot], str]) -> list[tuple[_Shot, str, list[str]]]:
    """Renders every image to ``imgs/<name_of(shot)>``.

    Returns:
        ``(shot, path relative to imgs/, captions)`` per image, person by person.
    """
    renderer = _Renderer(config)
    written = []
    for shots in _shots(config):
        identity = renderer.identity(shots[0].person)
        for shot in shots:
            relpath = name_of(shot)
            target = data_dir / _IMGS / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, renderer.image(identity, shot))
            written.append((shot, relpath, renderer.captions(identity, shot)))
    return written


# --------------------------------------------------------------------------------------------------
# CUHK-PEDES
# --------------------------------------------------------------------------------------------------
def _cuhk_name(config: SyntheticPedesConfig, shot: _Shot) -> str:
    """``<source>/<file>.jpg`` in the style of the source sets (the names carry no json id)."""
    rng = np.random.default_rng([config.seed, _TAG_FOLDER, shot.person, shot.index])
    source = _CUHK_SOURCES[int(rng.integers(len(_CUHK_SOURCES)))]
    serial = 10_000 + 7 * shot.frame + int(rng.integers(7))
    if source == "CUHK01":
        return f"CUHK01/{serial:04d}{shot.index:03d}.jpg"
    if source == "CUHK03":
        return f"CUHK03/{serial}_{shot.camid}.jpg"
    if source == "Market":
        return f"Market/{serial % 1500:04d}_c{shot.camid}s1_{serial:06d}_00.jpg"
    if source.startswith("cam_"):
        return f"{source}/{serial:03d}_{shot.index * 90}.jpg"
    return f"{source}/p{serial}_s{serial + shot.camid}.jpg"


def make_synthetic_cuhk_pedes(root: str | os.PathLike,
                              config: SyntheticPedesConfig = SyntheticCuhkPedesConfig()
                              ) -> pathlib.Path:
    """Writes a synthetic CUHK-PEDES under ``<root>/CUHK-PEDES`` (layout: module docstring).

    Args:
        root: Dataset root (the folder holding ``CUHK-PEDES``).
        config: Size and seed.

    Returns:
        The ``CUHK-PEDES`` folder.

    Raises:
        FileExistsError: ``root`` holds a CUHK-PEDES dataset not made by this generator.
    """
    data_dir = pathlib.Path(root) / CUHK_PEDES_DIR

    def write() -> list[dict]:
        written = _write_images(data_dir, config, lambda shot: _cuhk_name(config, shot))
        return [{"split": config.split_of(shot.person), "captions": captions,
                 "file_path": relpath,
                 "processed_tokens": [processed_tokens(c) for c in captions],
                 "id": shot.person + 1} for shot, relpath, captions in written]

    record = _record("CUHK-PEDES", config, _CUHK_JSON)
    return _build(data_dir, record, "CUHK-PEDES", (_CUHK_JSON,), write)


# --------------------------------------------------------------------------------------------------
# ICFG-PEDES
# --------------------------------------------------------------------------------------------------
def _icfg_folders(config: SyntheticPedesConfig) -> dict[int, tuple[str, int]]:
    """``{person: (storage folder, folder pid)}``: about a quarter of each split's persons (at
    least one when the split has two or more) stored under the other split's folder; each
    folder numbers its persons from 0 in person order."""
    rng = np.random.default_rng([config.seed, _TAG_FOLDER])
    folder = {}
    for split, other in (("train", "test"), ("test", "train")):
        persons = [p for p in range(config.num_ids) if config.split_of(p) == split]
        count = max(1, len(persons) // 4) if len(persons) >= 2 else 0
        moved = {persons[int(i)] for i in rng.choice(len(persons), size=count, replace=False)}
        folder.update({p: other if p in moved else split for p in persons})
    numbers = {"train": 0, "test": 0}
    storage = {}
    for person in range(config.num_ids):
        storage[person] = (folder[person], numbers[folder[person]])
        numbers[folder[person]] += 1
    return storage


def _icfg_name(config: SyntheticPedesConfig, storage: dict[int, tuple[str, int]],
               shot: _Shot) -> str:
    """``<train|test>/<pid4>/<pid4>_<idx3>_<cam2>_<date><period>_<frame>_0.jpg`` (MSMT17)."""
    folder, pid = storage[shot.person]
    rng = np.random.default_rng([config.seed, _TAG_FOLDER, shot.person, shot.index])
    date = f"{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    period = _ICFG_PERIODS[int(rng.integers(len(_ICFG_PERIODS)))]
    frame = 100 + 13 * shot.frame + int(rng.integers(13))
    return (f"{folder}/{pid:04d}/{pid:04d}_{shot.index + 1:03d}_{shot.camid:02d}_"
            f"{date}{period}_{frame}_0.jpg")


def make_synthetic_icfg_pedes(root: str | os.PathLike,
                              config: SyntheticIcfgPedesConfig = SyntheticIcfgPedesConfig()
                              ) -> pathlib.Path:
    """Writes a synthetic ICFG-PEDES under ``<root>/ICFG-PEDES`` (layout: module docstring).

    The ``imgs/train|test`` folders deliberately disagree with the json's split for some persons,
    so a reader that trusts folders fails. The annotation file is named ``config.json_name``.

    Args:
        root: Dataset root (the folder holding ``ICFG-PEDES``).
        config: Size, seed and annotation file spelling.

    Returns:
        The ``ICFG-PEDES`` folder.

    Raises:
        FileExistsError: ``root`` holds an ICFG-PEDES dataset not made by this generator.
    """
    if not isinstance(config, SyntheticIcfgPedesConfig):
        raise TypeError("make_synthetic_icfg_pedes takes a SyntheticIcfgPedesConfig")
    data_dir = pathlib.Path(root) / ICFG_PEDES_DIR
    storage = _icfg_folders(config)

    def write() -> list[dict]:
        written = _write_images(data_dir, config, lambda s: _icfg_name(config, storage, s))
        return [{"split": config.split_of(shot.person), "captions": captions,
                 "file_path": relpath,
                 "processed_tokens": [processed_tokens(c) for c in captions],
                 "id": shot.person} for shot, relpath, captions in written]

    record = _record("ICFG-PEDES", config, config.json_name)
    return _build(data_dir, record, "ICFG-PEDES", ICFG_JSON_NAMES, write)


# --------------------------------------------------------------------------------------------------
# RSTPReid
# --------------------------------------------------------------------------------------------------
def make_synthetic_rstpreid(root: str | os.PathLike,
                            config: SyntheticPedesConfig = SyntheticRstpReidConfig()
                            ) -> pathlib.Path:
    """Writes a synthetic RSTPReid under ``<root>/RSTPReid`` (layout: module docstring).

    Args:
        root: Dataset root (the folder holding ``RSTPReid``).
        config: Size and seed.

    Returns:
        The ``RSTPReid`` folder.

    Raises:
        FileExistsError: ``root`` holds an RSTPReid dataset not made by this generator.
    """
    data_dir = pathlib.Path(root) / RSTPREID_DIR

    def name(shot: _Shot) -> str:
        return f"{shot.person:04d}_c{shot.camid}_{shot.frame % 10_000:04d}.jpg"

    def write() -> list[dict]:
        written = _write_images(data_dir, config, name)
        return [{"id": shot.person, "img_path": relpath, "captions": captions,
                 "split": config.split_of(shot.person)} for shot, relpath, captions in written]

    record = _record("RSTPReid", config, _RSTP_JSON)
    return _build(data_dir, record, "RSTPReid", (_RSTP_JSON,), write)
