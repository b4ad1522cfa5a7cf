"""SYSU-MM01 and RegDB readers (pure: paths and labels, no pixels) and their torchreid datasets.

On-disk layouts, exactly as distributed (engines.md sections 1.4 and 1.5):

``<root>/SYSU-MM01/``
    ``cam1`` .. ``cam6/<pid:04d>/<nnnn>.jpg``: RGB cameras 1, 2 (indoor), 4, 5 (outdoor); IR
    cameras 3 (indoor) and 6 (outdoor). Not every person appears in every camera, so a missing
    ``camC/<pid>`` folder is normal. IR files may be one- or three-channel (read with
    ``.convert('RGB')``, as torchreid's ``read_image`` does). ``exp/{train,val,test}_id.txt``:
    each one line of comma-separated ids.
``<root>/RegDB/``
    ``Visible/<person>/...bmp``, ``Thermal/<person>/...bmp`` and
    ``idx/{train,test}_{visible,thermal}_{1..10}.txt``, one ``<path relative to RegDB/> <label>``
    per line.

Readers return :class:`VIRecord` s (an :class:`~torchreid_pixelfade.store.records.ImageRecord`
with a modality). SYSU training uses the train *and* val ids (as AGW does: 395 ids). The
test-time query/gallery selection of SYSU (official direction: IR probe against a sampled
single-/multi-shot RGB gallery, 10 trials, cam3-vs-cam2 removal) belongs to the protocol module;
:class:`SysuTestSet` gives it the per-camera, per-identity file lists it samples from.

The torchreid datasets (:func:`register_vi_datasets`) expose one fixed direction for ``-s/-t``:
query = visible test images, gallery = infrared test images (the side PixelFade protects). Their
``camid`` is the physical camera (SYSU 1..6; RegDB visible 1, thermal 2), so it encodes the
modality and torchreid's same-camera removal never removes anything.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from collections.abc import Iterable, Sequence

from ...data.registry import LazyDatasets
from ...store.records import ImageRecord

__all__ = [
    "VISIBLE",
    "INFRARED",
    "SYSU_DIR",
    "SYSU_RGB_CAMERAS",
    "SYSU_IR_CAMERAS",
    "SYSU_INDOOR_RGB_CAMERAS",
    "SYSU_MODES",
    "REGDB_DIR",
    "REGDB_TRIALS",
    "REGDB_CAMID",
    "VIRecord",
    "SysuTestSet",
    "SysuMM01Data",
    "RegDBData",
    "read_id_file",
    "read_sysu_mm01",
    "read_regdb_index",
    "read_regdb",
    "torchreid_items",
    "sysu_camera_modality",
    "regdb_dataset_name",
    "register_vi_datasets",
]

logger = logging.getLogger(__name__)

VISIBLE = "visible"
INFRARED = "infrared"

SYSU_DIR = "SYSU-MM01"
#: RGB cameras of SYSU-MM01 (1, 2 indoor; 4, 5 outdoor).
SYSU_RGB_CAMERAS = (1, 2, 4, 5)
#: IR cameras of SYSU-MM01 (3 indoor, same place as 2; 6 outdoor).
SYSU_IR_CAMERAS = (3, 6)
#: RGB cameras of the indoor-search gallery (the IR side stays 3 and 6).
SYSU_INDOOR_RGB_CAMERAS = (1, 2)
SYSU_MODES = ("all", "indoor")
_SYSU_ID_FILES = ("train_id.txt", "val_id.txt", "test_id.txt")

REGDB_DIR = "RegDB"
REGDB_TRIALS = tuple(range(1, 11))
#: Camera number of each RegDB modality (as AGW's ``eval_regdb`` sets them).
REGDB_CAMID = {VISIBLE: 1, INFRARED: 2}
_REGDB_FOLDER = {VISIBLE: "Visible", INFRARED: "Thermal"}
_REGDB_IDX_NAME = {VISIBLE: "visible", INFRARED: "thermal"}

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclasses.dataclass(frozen=True)
class VIRecord(ImageRecord):
    """An :class:`ImageRecord` of a visible-infrared dataset.

    Attributes:
        path: Absolute image path.
        relpath: Path relative to the dataset folder (``SYSU-MM01/`` or ``RegDB/``).
        pid: Identity as stored (SYSU folder number; RegDB idx label), not relabelled.
        camid: Physical camera (SYSU 1..6; RegDB visible 1, thermal 2).
        split: ``"train"`` or ``"test"``.
        modality: :data:`VISIBLE` or :data:`INFRARED`.
    """

    modality: str


def _is_image(name: str) -> bool:
    """Whether ``name`` is a visible image file name (hidden temporary files excluded)."""
    return not name.startswith(".") and name.lower().endswith(_IMAGE_EXTENSIONS)


def torchreid_items(records: Iterable[VIRecord], relabel: bool = False
                    ) -> list[tuple[str, int, int]]:
    """torchreid data-list items ``(path, pid, camid)`` of ``records``.

    Args:
        records: Records in order.
        relabel: Map the pids to ``0 .. P-1`` in increasing pid order (for training).
    """
    records = list(records)
    if not relabel:
        return [(r.path, r.pid, r.camid) for r in records]
    label = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [(r.path, label[r.pid], r.camid) for r in records]


# --------------------------------------------------------------------------------------------------
# SYSU-MM01
# --------------------------------------------------------------------------------------------------
def sysu_camera_modality(camid: int) -> str:
    """:data:`VISIBLE` for SYSU RGB cameras 1, 2, 4, 5; :data:`INFRARED` for 3 and 6."""
    if camid in SYSU_RGB_CAMERAS:
        return VISIBLE
    if camid in SYSU_IR_CAMERAS:
        return INFRARED
    raise ValueError(f"SYSU-MM01 has cameras 1..6, got {camid}")


def read_id_file(path: str | os.PathLike) -> list[int]:
    """Reads a SYSU-MM01 ``exp/*_id.txt``: one line of comma-separated positive integers.

    Blank lines and whitespace around the ids are ignored.

    Returns:
        The ids in file order.

    Raises:
        FileNotFoundError: The file is missing.
        ValueError: Naming the file and line: no ids, a second line of ids, a token that is not a
            positive integer, or a repeated id.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SYSU-MM01 id file {path} is missing")
    lines = [(n, line.strip()) for n, line in enumerate(path.read_text().splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line]
    if not lines:
        raise ValueError(f"{path}: no ids (expected one line of comma-separated ids)")
    if len(lines) > 1:
        raise ValueError(f"{path}, line {lines[1][0]}: expected one line of comma-separated ids")
    number, line = lines[0]
    ids = [_positive_int(token, path, number) for token in line.split(",") if token.strip()]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{path}, line {number}: repeated ids {duplicates}")
    return ids


def _positive_int(token: str, path: pathlib.Path, line: int) -> int:
    """``int(token)`` if it is a positive integer, else a ValueError naming file and line."""
    token = token.strip()
    if not token.isdigit() or int(token) < 1:
        raise ValueError(f"{path}, line {line}: {token!r} is not a positive integer id")
    return int(token)


@dataclasses.dataclass(frozen=True)
class SysuTestSet:
    """The SYSU-MM01 test images, per camera and identity, for the protocol's sampling.

    Attributes:
        dataset_dir: The ``SYSU-MM01`` folder.
        ids: Test ids in increasing order.
        rgb_cameras: RGB cameras of the gallery in this mode (``(1, 2, 4, 5)`` or ``(1, 2)``).
        ir_cameras: IR cameras, ``(3, 6)`` in both modes.
        files: ``files[cam][pid]`` -> sorted absolute paths, for all six cameras (whatever
            the mode, so the protocol may sample either mode's gallery) and every test id with
            a non-empty ``cam<cam>/<pid>`` folder (ids absent from a camera have no key there).
    """

    dataset_dir: str
    ids: tuple[int, ...]
    rgb_cameras: tuple[int, ...]
    ir_cameras: tuple[int, ...]
    files: dict[int, dict[int, tuple[str, ...]]]

    def records(self, cameras: Sequence[int] | None = None) -> list[VIRecord]:
        """Test records of ``cameras`` (default: this mode's RGB and IR cameras), ordered by
        camera, id and file."""
        cameras = tuple(cameras) if cameras is not None else self.rgb_cameras + self.ir_cameras
        unknown = sorted(set(cameras) - set(self.files))
        if unknown:
            raise ValueError(f"cameras {unknown} are not in this test set ({sorted(self.files)})")
        return [_sysu_record(self.dataset_dir, path, pid, cam, "test")
                for cam in sorted(cameras) for pid, paths in sorted(self.files[cam].items())
                for path in paths]

    def visible_records(self) -> list[VIRecord]:
        """All test images of the RGB cameras of this mode."""
        return self.records(self.rgb_cameras)

    def infrared_records(self) -> list[VIRecord]:
        """All test images of the IR cameras (3 and 6)."""
        return self.records(self.ir_cameras)


@dataclasses.dataclass(frozen=True)
class SysuMM01Data:
    """What :func:`read_sysu_mm01` read.

    Attributes:
        dataset_dir: The ``SYSU-MM01`` folder.
        mode: ``"all"`` or ``"indoor"`` (indoor: RGB test cameras 1, 2 only).
        train_ids: Training ids (train + val when ``include_val``), increasing.
        test_ids: Test ids, increasing.
        train: Every image of the training ids in all six cameras (both modalities).
        test: The test images by camera and id.
    """

    dataset_dir: str
    mode: str
    train_ids: tuple[int, ...]
    test_ids: tuple[int, ...]
    train: list[VIRecord]
    test: SysuTestSet


def _sysu_record(dataset_dir: str, path: str, pid: int, cam: int, split: str) -> VIRecord:
    """The record of one SYSU-MM01 image file."""
    return VIRecord(path, os.path.relpath(path, dataset_dir), pid, cam, split,
                    sysu_camera_modality(cam))


def _sysu_files(dataset_dir: pathlib.Path, cam: int, ids: Iterable[int]
                ) -> dict[int, tuple[str, ...]]:
    """``{pid: sorted absolute paths}`` of camera ``cam`` for the ids with a non-empty folder."""
    found = {}
    for pid in ids:
        folder = dataset_dir / f"cam{cam}" / f"{pid:04d}"
        if not folder.is_dir():
            continue  # not every person appears in every camera
        paths = tuple(str(folder / name) for name in sorted(os.listdir(folder)) if _is_image(name))
        if paths:
            found[pid] = paths
    return found


def _check_sysu_dir(dataset_dir: pathlib.Path) -> None:
    """Raises FileNotFoundError naming the first missing camera or ``exp`` folder."""
    for name in [f"cam{c}" for c in range(1, 7)] + ["exp"]:
        if not (dataset_dir / name).is_dir():
            raise FileNotFoundError(f"SYSU-MM01 folder {dataset_dir / name} is missing")


def _split_ids(dataset_dir: pathlib.Path, include_val: bool) -> tuple[list[int], list[int]]:
    """``(train ids, test ids)`` from ``exp/``; raises ValueError if they overlap."""
    exp = dataset_dir / "exp"
    train, val, test = (read_id_file(exp / name) for name in _SYSU_ID_FILES)
    train_ids = sorted(set(train) | set(val)) if include_val else sorted(train)
    overlap = sorted(set(train_ids) & set(test))
    if overlap:
        raise ValueError(f"{exp}: ids {overlap[:10]} are both training and test ids")
    return train_ids, sorted(test)


def _warn_missing_ids(label: str, ids: Sequence[int], files: dict[int, dict]) -> None:
    """Logs the ids of ``ids`` that have no image in any camera of ``files``."""
    seen = {pid for per_pid in files.values() for pid in per_pid}
    missing = [pid for pid in ids if pid not in seen]
    if missing:
        logger.warning("SYSU-MM01: %d %s ids have no image (first: %s)", len(missing), label,
                       missing[:10])


def read_sysu_mm01(root: str | os.PathLike, mode: str = "all", include_val: bool = True
                   ) -> SysuMM01Data:
    """Reads ``<root>/SYSU-MM01`` (file lists only; no image is opened).

    Args:
        root: Folder holding ``SYSU-MM01/``.
        mode: ``"all"`` (RGB test cameras 1, 2, 4, 5) or ``"indoor"`` (1, 2). The IR test cameras
            are 3 and 6 in both modes, and training always uses all six cameras (as AGW does).
        include_val: Train on train + val ids (AGW, 395 ids) rather than train ids only.

    Returns:
        Training records (by camera, id, file) and the test set by camera and id.

    Raises:
        FileNotFoundError: ``SYSU-MM01``, a ``cam1..cam6`` or ``exp`` folder, or an id file is
            missing.
        ValueError: ``mode`` is unknown, an id file is malformed (file and line named), or train
            and test ids overlap.
    """
    if mode not in SYSU_MODES:
        raise ValueError(f"SYSU-MM01 mode must be one of {SYSU_MODES}, got {mode!r}")
    dataset_dir = pathlib.Path(root).expanduser().absolute() / SYSU_DIR
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"SYSU-MM01 folder {dataset_dir} is missing")
    _check_sysu_dir(dataset_dir)
    train_ids, test_ids = _split_ids(dataset_dir, include_val)
    train_files = {c: _sysu_files(dataset_dir, c, train_ids) for c in range(1, 7)}
    rgb = SYSU_RGB_CAMERAS if mode == "all" else SYSU_INDOOR_RGB_CAMERAS
    test_files = {c: _sysu_files(dataset_dir, c, test_ids) for c in range(1, 7)}
    _warn_missing_ids("training", train_ids, train_files)
    _warn_missing_ids("test", test_ids, {c: test_files[c] for c in rgb + SYSU_IR_CAMERAS})
    base = str(dataset_dir)
    train = [_sysu_record(base, path, pid, cam, "train") for cam, per_pid in train_files.items()
             for pid, paths in sorted(per_pid.items()) for path in paths]
    test = SysuTestSet(base, tuple(test_ids), rgb, SYSU_IR_CAMERAS, test_files)
    logger.info("SYSU-MM01 (%s): %d training ids / %d images, %d test ids", mode,
                len(train_ids), len(train), len(test_ids))
    return SysuMM01Data(base, mode, tuple(train_ids), tuple(test_ids), train, test)


# --------------------------------------------------------------------------------------------------
# RegDB
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RegDBData:
    """What :func:`read_regdb` read for one trial (records in idx-file order).

    Attributes:
        dataset_dir: The ``RegDB`` folder.
        trial: Trial number, 1..10.
        train_visible: ``idx/train_visible_<trial>.txt``.
        train_thermal: ``idx/train_thermal_<trial>.txt``.
        test_visible: ``idx/test_visible_<trial>.txt``.
        test_thermal: ``idx/test_thermal_<trial>.txt``.
    """

    dataset_dir: str
    trial: int
    train_visible: list[VIRecord]
    train_thermal: list[VIRecord]
    test_visible: list[VIRecord]
    test_thermal: list[VIRecord]

    @property
    def train(self) -> list[VIRecord]:
        """Training records of both modalities (visible first)."""
        return self.train_visible + self.train_thermal


def _regdb_line(path: pathlib.Path, number: int, line: str) -> tuple[str, int]:
    """``(relative path, label)`` of one idx line, or a ValueError naming file and line."""
    fields = line.split()
    if len(fields) != 2:
        raise ValueError(f"{path}, line {number}: expected '<relative path> <label>', "
                         f"got {line!r}")
    relpath, label = fields
    if not label.isdigit():
        raise ValueError(f"{path}, line {number}: label {label!r} is not a non-negative integer")
    if os.path.isabs(relpath) or ".." in pathlib.PurePath(relpath).parts:
        raise ValueError(f"{path}, line {number}: {relpath!r} is not a path inside RegDB/")
    return relpath, int(label)


def read_regdb_index(path: str | os.PathLike, dataset_dir: str | os.PathLike, modality: str,
                     split: str) -> list[VIRecord]:
    """Reads one RegDB idx file; blank lines are skipped.

    Args:
        path: The idx file.
        dataset_dir: The ``RegDB`` folder the listed paths are relative to.
        modality: :data:`VISIBLE` or :data:`INFRARED` (sets the camid; a path under the other
            modality's folder is an error).
        split: ``"train"`` or ``"test"``, stored in the records.

    Returns:
        The records in file order.

    Raises:
        FileNotFoundError: The idx file, or an image it lists (file and line named), is missing.
        ValueError: A malformed line, or a path in the other modality's folder (file and line
            named), or no entries.
    """
    path, dataset_dir = pathlib.Path(path), pathlib.Path(dataset_dir)
    if not path.is_file():
        raise FileNotFoundError(f"RegDB index file {path} is missing")
    other = _REGDB_FOLDER[INFRARED if modality == VISIBLE else VISIBLE]
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        relpath, label = _regdb_line(path, number, line)
        if pathlib.PurePath(relpath).parts[0].lower() == other.lower():
            raise ValueError(f"{path}, line {number}: {relpath!r} is in {other}/, not a "
                             f"{modality} image")
        image = dataset_dir / relpath
        if not image.is_file():
            raise FileNotFoundError(f"{path}, line {number}: image {image} is missing")
        records.append(VIRecord(str(image), relpath, label, REGDB_CAMID[modality], split,
                                modality))
    if not records:
        raise ValueError(f"RegDB index file {path} lists no images")
    return records


def _check_same_labels(first: list[VIRecord], second: list[VIRecord], names: tuple[str, str]
                       ) -> None:
    """Raises ValueError when the visible and thermal idx files of a split have other labels."""
    a, b = {r.pid for r in first}, {r.pid for r in second}
    if a != b:
        raise ValueError(f"RegDB {names[0]} and {names[1]} list different labels "
                         f"(only in one: {sorted(a ^ b)[:10]})")


def read_regdb(root: str | os.PathLike, trial: int = 1) -> RegDBData:
    """Reads trial ``trial`` of ``<root>/RegDB`` (file lists only; no image is opened).

    Labels are the idx labels (never parsed from file names); pids are not relabelled.

    Args:
        root: Folder holding ``RegDB/``.
        trial: Trial number, 1..10.

    Returns:
        The four idx lists of the trial as records.

    Raises:
        FileNotFoundError: ``RegDB/``, an idx file or a listed image is missing.
        ValueError: ``trial`` is out of range, an idx line is malformed (file and line named), or
            the visible and thermal files of a split list different labels.
    """
    if trial not in REGDB_TRIALS:
        raise ValueError(f"RegDB trial must be in 1..10, got {trial!r}")
    dataset_dir = pathlib.Path(root).expanduser().absolute() / REGDB_DIR
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"RegDB folder {dataset_dir} is missing")
    lists = {}
    for split in ("train", "test"):
        for modality in (VISIBLE, INFRARED):
            name = f"{split}_{_REGDB_IDX_NAME[modality]}_{trial}.txt"
            index = dataset_dir / "idx" / name
            lists[name] = read_regdb_index(index, dataset_dir, modality, split)
    names = list(lists)
    _check_same_labels(lists[names[0]], lists[names[1]], (names[0], names[1]))
    _check_same_labels(lists[names[2]], lists[names[3]], (names[2], names[3]))
    logger.info("RegDB trial %d: %s", trial, ", ".join(f"{n} {len(v)}" for n, v in lists.items()))
    return RegDBData(str(dataset_dir), trial, *lists.values())


# --------------------------------------------------------------------------------------------------
# torchreid datasets
# --------------------------------------------------------------------------------------------------
def _image_dataset_class() -> type:
    """torchreid's ``ImageDataset`` (imported lazily: this module never loads torchreid)."""
    from ..._torchreid import tr
    return tr.data.ImageDataset


def _make_sysu_class(mode: str) -> type:
    """A torchreid ``ImageDataset`` subclass reading SYSU-MM01 in ``mode``."""

    def __init__(self, root: str = "", **kwargs) -> None:
        data = read_sysu_mm01(root, mode=self.sysu_mode)
        self.root = os.path.abspath(os.path.expanduser(root))
        self.dataset_dir = data.dataset_dir
        self.vi_data = data
        train = torchreid_items(data.train, relabel=True)
        query = torchreid_items(data.test.visible_records())
        gallery = torchreid_items(data.test.infrared_records())
        _image_dataset_class().__init__(self, train, query, gallery, **kwargs)

    doc = (f"SYSU-MM01 ({mode}-search cameras) as a torchreid image dataset.\n\n"
           "train: the train + val ids in all six cameras, pids relabelled 0..P-1; query: every\n"
           "RGB test image of the mode's RGB cameras; gallery: every IR test image (cams 3, 6),\n"
           "the side PixelFade protects. camid = physical camera 1..6. The official direction\n"
           "(IR probe vs a sampled RGB gallery, 10 trials, cam3/cam2 removal) is the VI\n"
           "protocol module's job, not this dataset's.")
    name = "SYSUMM01" if mode == "all" else "SYSUMM01Indoor"
    return type(name, (_image_dataset_class(),),
                {"__init__": __init__, "__doc__": doc, "sysu_mode": mode, "__module__": __name__})


def _make_regdb_class(trial: int) -> type:
    """A torchreid ``ImageDataset`` subclass reading RegDB trial ``trial``."""

    def __init__(self, root: str = "", **kwargs) -> None:
        data = read_regdb(root, trial=self.regdb_trial)
        self.root = os.path.abspath(os.path.expanduser(root))
        self.dataset_dir = data.dataset_dir
        self.vi_data = data
        train = torchreid_items(data.train, relabel=True)
        query = torchreid_items(data.test_visible)
        gallery = torchreid_items(data.test_thermal)
        _image_dataset_class().__init__(self, train, query, gallery, **kwargs)

    doc = (f"RegDB trial {trial} as a torchreid image dataset.\n\n"
           "train: train_visible + train_thermal, labels relabelled 0..P-1; query:\n"
           "test_visible; gallery: test_thermal (AGW's default visible->thermal direction;\n"
           "the thermal side is the one PixelFade protects). camid: visible 1, thermal 2.")
    return type(f"RegDBTrial{trial}", (_image_dataset_class(),),
                {"__init__": __init__, "__doc__": doc, "regdb_trial": trial,
                 "__module__": __name__})


def regdb_dataset_name(trial: int) -> str:
    """The torchreid dataset name of RegDB trial ``trial`` (``regdb`` is trial 1 too)."""
    return f"regdb_trial{trial}"


def _build_classes() -> dict[str, type]:
    regdb = {t: _make_regdb_class(t) for t in REGDB_TRIALS}
    return {"sysu_mm01": _make_sysu_class("all"), "sysu_mm01_indoor": _make_sysu_class("indoor"),
            "regdb": regdb[1], **{regdb_dataset_name(t): cls for t, cls in regdb.items()}}


_DATASETS = LazyDatasets(_build_classes, {"SYSUMM01", "SYSUMM01Indoor"} |
                         {f"RegDBTrial{t}" for t in REGDB_TRIALS})


def __getattr__(name: str) -> type:
    """The dataset classes by class name (``SYSUMM01``, ``RegDBTrial3`` ...), built on first
    use, so that pickled dataset instances (spawned DataLoader workers) find their class."""
    return _DATASETS.by_class_name(__name__, name)


def register_vi_datasets() -> list[str]:
    """Registers the VI datasets with torchreid, idempotently, so ``-s/-t <name>`` work.

    Names: ``sysu_mm01`` (all-search cameras), ``sysu_mm01_indoor`` (RGB cams 1, 2), ``regdb``
    (trial 1) and ``regdb_trial1`` .. ``regdb_trial10``. The data root is torchreid's ``root``
    (``<root>/SYSU-MM01``, ``<root>/RegDB``).

    Returns:
        The registered names.
    """
    return _DATASETS.register()
