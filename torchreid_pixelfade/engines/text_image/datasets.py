"""CUHK-PEDES, ICFG-PEDES and RSTPReid readers (pure: paths, labels, captions; no pixels) and
their torchreid image datasets.

On-disk layouts, exactly as distributed (engines.md sections 1.1 to 1.3):

``<root>/CUHK-PEDES/``
    ``imgs/<source sub-folder>/<file>`` and ``reid_raw.json``: a JSON list of
    ``{"split", "captions", "file_path", "id"[, "processed_tokens"]}``; ``file_path`` is relative
    to ``imgs/`` and taken verbatim (never parsed). ``split`` is ``train``/``val``/``test``.
``<root>/ICFG-PEDES/``
    ``imgs/{train,test}/<pid4>/<file>`` and ``ICFG-PEDES.json`` (the name IRRA and SSAN read; the
    READMEs draw ``ICFG_PEDES.json``, which is accepted too), keyed like ``reid_raw.json``. The
    ``train``/``test`` folders are MSMT17's storage, not the split: the json's ``split`` decides.
``<root>/RSTPReid/``
    ``imgs/<file>`` (flat) and ``data_captions.json``, whose image key is ``img_path``.

Semantics follow IRRA (``datasets/{cuhkpedes,icfgpedes,rstpreid}.py``):

- Split: ``train`` and ``test`` entries as named; any other ``split`` counts as ``val``.
- Training: one :class:`CaptionRow` ``(pid, image_id, path, caption)`` per caption; ``image_id``
  counts the training images in json order from 0. Training pids must be exactly ``0 .. P-1``:
  CUHK-PEDES json ids are 1-based (``pid = id - 1``, so its training ids are ``1 .. P``);
  ICFG-PEDES and RSTPReid use ``pid = id`` (``0 .. P-1``). A gap raises (IRRA asserts it).
- Test (and val): the gallery is every image (:class:`T2IRecord`, raw json ``id`` as pid), the
  queries every caption (:class:`CaptionQuery`, with the pid and the image id it describes).
  Ranking compares all captions with all images, without any camera or junk removal.

Images carry ``camid`` 0 (T2I has no cameras); ``relpath`` is relative to the dataset folder
(``imgs/...``), so protected copies keep the layout.

The torchreid datasets (:func:`register_t2i_datasets`: ``cuhk_pedes``, ``icfg_pedes``,
``rstpreid``) expose the image side only, so ``-s/-t <name>`` can train, protect and extract image
features: ``train`` = one item per training image (pid relabelled as above), ``gallery`` = the test
images (camid 0), and ``query`` = the same test images with camid 1. Text queries are not a
torchreid concept; they live in the T2I engine (``TextImageData.test.queries``). torchreid's own
image-to-image evaluation on this query/gallery pair is meaningless (every query finds itself), and
``combineall`` would duplicate the test images; val entries are not exposed.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import pathlib
from collections.abc import Sequence
from typing import NamedTuple

from ...data.registry import LazyDatasets
from ...store.records import ImageRecord

__all__ = [
    "CUHK_PEDES",
    "ICFG_PEDES",
    "RSTPREID",
    "T2I_DATASETS",
    "T2I_SPLITS",
    "T2IFormat",
    "T2IRecord",
    "CaptionRow",
    "CaptionQuery",
    "T2ISplit",
    "TextImageData",
    "read_annotations",
    "read_t2i_dataset",
    "read_cuhk_pedes",
    "read_icfg_pedes",
    "read_rstpreid",
    "register_t2i_datasets",
]

logger = logging.getLogger(__name__)

CUHK_PEDES = "cuhk_pedes"
ICFG_PEDES = "icfg_pedes"
RSTPREID = "rstpreid"
T2I_SPLITS = ("train", "val", "test")
IMAGE_FOLDER = "imgs"
#: camid of every T2I image (and of the torchreid gallery); the torchreid query side gets 1.
T2I_CAMID = 0
_QUERY_CAMID = 1


@dataclasses.dataclass(frozen=True)
class T2IFormat:
    """What differs between the three datasets' files.

    Attributes:
        name: Registry name (``cuhk_pedes`` ...).
        title: Human-readable name, used in messages.
        folder: Dataset folder under the root.
        annotation_files: Accepted annotation file names, in order of preference.
        image_key: Key of the image path (relative to ``imgs/``) in an entry.
        id_offset: ``pid = id - id_offset`` for training entries (CUHK-PEDES: 1).
    """

    name: str
    title: str
    folder: str
    annotation_files: tuple[str, ...]
    image_key: str
    id_offset: int


T2I_DATASETS = {
    CUHK_PEDES: T2IFormat(CUHK_PEDES, "CUHK-PEDES", "CUHK-PEDES", ("reid_raw.json",),
                          "file_path", 1),
    ICFG_PEDES: T2IFormat(ICFG_PEDES, "ICFG-PEDES", "ICFG-PEDES",
                          ("ICFG-PEDES.json", "ICFG_PEDES.json"), "file_path", 0),
    RSTPREID: T2IFormat(RSTPREID, "RSTPReid", "RSTPReid", ("data_captions.json",),
                        "img_path", 0),
}


@dataclasses.dataclass(frozen=True)
class T2IRecord(ImageRecord):
    """An :class:`ImageRecord` of a text-to-image dataset: one image with its captions.

    Attributes:
        path: Absolute image path (``<dataset>/imgs/<json path>``).
        relpath: Path relative to the dataset folder, ``imgs/<json path>``.
        pid: Training images: the relabelled pid ``0 .. P-1``; val/test: the raw json ``id``.
        camid: Always :data:`T2I_CAMID` (0).
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_id: Index of the image within its split, from 0 in json order.
        captions: The entry's captions (at least one), verbatim.
        entry: Index of the entry in the annotation file (for messages).
    """

    image_id: int
    captions: tuple[str, ...]
    entry: int


class CaptionRow(NamedTuple):
    """One training row of IRRA: a caption of an image (unpacks as IRRA's tuple)."""

    pid: int
    image_id: int
    path: str
    caption: str


class CaptionQuery(NamedTuple):
    """One test query: a caption, its person and the image (of the same split) it describes."""

    pid: int
    image_id: int
    caption: str


@dataclasses.dataclass(frozen=True)
class T2ISplit:
    """The val or test split: every image is a gallery item, every caption a query.

    Attributes:
        images: Gallery images in json order (``images[k].image_id == k``).
        queries: Every caption of every image, in json order.
    """

    images: tuple[T2IRecord, ...]
    queries: tuple[CaptionQuery, ...]

    @property
    def pids(self) -> list[int]:
        """Distinct pids, increasing."""
        return sorted({r.pid for r in self.images})

    def as_irra_dict(self) -> dict[str, list]:
        """IRRA's form ``{"image_pids", "img_paths", "caption_pids", "captions"}``."""
        return {"image_pids": [r.pid for r in self.images],
                "img_paths": [r.path for r in self.images],
                "caption_pids": [q.pid for q in self.queries],
                "captions": [q.caption for q in self.queries]}


@dataclasses.dataclass(frozen=True)
class TextImageData:
    """What a reader read.

    Attributes:
        name: Registry name of the dataset.
        dataset_dir: The dataset folder (absolute).
        annotation_path: The annotation file read.
        train_images: Training images (pids ``0 .. P-1``), json order.
        train: One :class:`CaptionRow` per training caption.
        val: The val split (empty for ICFG-PEDES, which has none).
        test: The test split.
    """

    name: str
    dataset_dir: str
    annotation_path: str
    train_images: tuple[T2IRecord, ...]
    train: tuple[CaptionRow, ...]
    val: T2ISplit
    test: T2ISplit

    @property
    def num_train_pids(self) -> int:
        """Number of training identities ``P``."""
        return len({r.pid for r in self.train_images})


# --------------------------------------------------------------------------------------------------
# Annotation file
# --------------------------------------------------------------------------------------------------
def _annotation_path(dataset_dir: pathlib.Path, fmt: T2IFormat) -> pathlib.Path:
    """The first existing accepted annotation file; warns when several exist."""
    found = [dataset_dir / name for name in fmt.annotation_files if (dataset_dir / name).is_file()]
    if not found:
        names = " or ".join(fmt.annotation_files)
        raise FileNotFoundError(f"{fmt.title} annotation file {names} is missing in {dataset_dir}")
    if len(found) > 1:
        logger.warning("%s: both %s exist; reading %s", fmt.title,
                       " and ".join(p.name for p in found), found[0].name)
    return found[0]


def read_annotations(path: str | os.PathLike) -> list:
    """Reads an annotation JSON file, which must hold a list.

    Raises:
        FileNotFoundError: The file is missing.
        ValueError: Not UTF-8 JSON (file, line and column named), or not a list.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} is missing")
    try:
        annotations = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}, line {error.lineno}, column {error.colno}: not valid JSON "
                         f"({error.msg})") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from error
    if not isinstance(annotations, list):
        raise ValueError(f"{path}: expected a JSON list of entries, got "
                         f"{type(annotations).__name__}")
    return annotations


def _where(path: pathlib.Path, index: int, entry: object, fmt: T2IFormat) -> str:
    """``"<file>, entry <i> (<image key> '<value>')"`` for messages."""
    image = entry.get(fmt.image_key) if isinstance(entry, dict) else None
    shown = f" ({fmt.image_key} {image!r})" if isinstance(image, str) else ""
    return f"{path}, entry {index}{shown}"


def _entry_id(value: object, where: str) -> int:
    """The entry's ``id`` as a non-negative int (ints or digit strings, as IRRA's ``int()``)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{where}: 'id' must be a non-negative integer, got {value!r}")
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError(f"{where}: 'id' must be a non-negative integer, got {value!r}")
    if int(value) < 0:
        raise ValueError(f"{where}: 'id' must be a non-negative integer, got {value!r}")
    return int(value)


def _entry_captions(value: object, where: str) -> tuple[str, ...]:
    """The entry's captions: a non-empty list of non-blank strings."""
    if not isinstance(value, list):
        raise ValueError(f"{where}: 'captions' must be a list of strings, got "
                         f"{type(value).__name__}")
    if not value:
        raise ValueError(f"{where}: empty caption list")
    for k, caption in enumerate(value):
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"{where}: caption {k} is not a non-empty string: {caption!r}")
    return tuple(value)


def _entry_image(value: object, where: str, image_dir: pathlib.Path, check: bool
                 ) -> tuple[str, str]:
    """``(absolute path, path relative to the dataset folder)`` of the entry's image."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: image path must be a non-empty string, got {value!r}")
    parts = pathlib.PurePosixPath(value.replace("\\", "/")).parts
    if os.path.isabs(value) or value.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"{where}: image path must stay inside {image_dir}")
    image = image_dir / value
    if check and not image.is_file():
        raise FileNotFoundError(f"{where}: image {image} is missing")
    return str(image), f"{IMAGE_FOLDER}/{value}"


def _entry_split(value: object, where: str) -> str:
    """``train``/``test`` as named; any other string is ``val`` (IRRA's ``_split_anno``)."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: 'split' must be a string, got {value!r}")
    return value if value in ("train", "test") else "val"


class _Entry(NamedTuple):
    index: int
    split: str
    raw_id: int
    path: str
    relpath: str
    captions: tuple[str, ...]


def _parse_entries(path: pathlib.Path, annotations: list, fmt: T2IFormat,
                   image_dir: pathlib.Path, check_images: bool) -> list[_Entry]:
    """Validates every entry; errors name the file, the entry index and its image path."""
    entries = []
    for index, entry in enumerate(annotations):
        where = _where(path, index, entry, fmt)
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [k for k in ("split", "captions", fmt.image_key, "id") if k not in entry]
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}")
        image, relpath = _entry_image(entry[fmt.image_key], where, image_dir, check_images)
        entries.append(_Entry(index, _entry_split(entry["split"], where),
                              _entry_id(entry["id"], where), image, relpath,
                              _entry_captions(entry["captions"], where)))
    return entries


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------
def _train_pids(entries: Sequence[_Entry], fmt: T2IFormat, path: pathlib.Path) -> list[int]:
    """``id - id_offset`` per training entry, checked to be exactly ``0 .. P-1``."""
    pids = []
    for e in entries:
        pid = e.raw_id - fmt.id_offset
        if pid < 0:
            raise ValueError(f"{path}, entry {e.index}: training id {e.raw_id} is below "
                             f"{fmt.id_offset}; {fmt.title} training ids start at {fmt.id_offset}")
        pids.append(pid)
    distinct = sorted(set(pids))
    if distinct and distinct[-1] != len(distinct) - 1:
        gaps = sorted(set(range(distinct[-1] + 1)) - set(distinct))
        first, last = fmt.id_offset, fmt.id_offset + distinct[-1]
        raise ValueError(f"{path}: {fmt.title} training ids must be contiguous from "
                         f"{fmt.id_offset} (IRRA relabels pid = id - {fmt.id_offset} and asserts "
                         f"0..P-1); ids {first}..{last} lack "
                         f"{[g + fmt.id_offset for g in gaps[:10]]}")
    return pids


def _records(entries: Sequence[_Entry], pids: Sequence[int], split: str
             ) -> tuple[T2IRecord, ...]:
    """Image records of one split, ``image_id`` = position in the split."""
    return tuple(T2IRecord(e.path, e.relpath, pid, T2I_CAMID, split, k, e.captions, e.index)
                 for k, (e, pid) in enumerate(zip(entries, pids, strict=True)))


def _eval_split(entries: Sequence[_Entry], split: str) -> T2ISplit:
    """A val/test split: images with their raw ids, and one query per caption."""
    images = _records(entries, [e.raw_id for e in entries], split)
    queries = tuple(CaptionQuery(r.pid, r.image_id, c) for r in images for c in r.captions)
    return T2ISplit(images, queries)


def _log_folder_mismatch(fmt: T2IFormat, records: Sequence[T2IRecord]) -> None:
    """ICFG-PEDES: counts images stored under an ``imgs/<other split>/`` folder (normal)."""
    folders = [(r.split, r.relpath.split("/")[1:-1]) for r in records]
    moved = collections.Counter((split, parts[0]) for split, parts in folders
                                if parts and parts[0] in T2I_SPLITS and parts[0] != split)
    for (split, folder), count in sorted(moved.items()):
        logger.info("%s: %d %s-split images are stored under imgs/%s/ (the json split wins)",
                    fmt.title, count, split, folder)


def _warn_duplicates(fmt: T2IFormat, path: pathlib.Path, entries: Sequence[_Entry]) -> None:
    """Logs images listed by more than one entry."""
    counts = collections.Counter(e.relpath for e in entries)
    repeated = [p for p, n in counts.items() if n > 1]
    if repeated:
        logger.warning("%s: %d images are listed more than once in %s (first: %s)", fmt.title,
                       len(repeated), path, repeated[0])


def read_t2i_dataset(name: str, root: str | os.PathLike, check_images: bool = True
                     ) -> TextImageData:
    """Reads one of :data:`T2I_DATASETS` under ``root`` (layouts: module docstring).

    Args:
        name: ``"cuhk_pedes"``, ``"icfg_pedes"`` or ``"rstpreid"``.
        root: Folder holding the dataset folder.
        check_images: Check that every listed image file exists (one ``stat`` per entry).

    Returns:
        Training rows and images, and the val and test splits, in json order.

    Raises:
        FileNotFoundError: The dataset folder, ``imgs/``, the annotation file or (with
            ``check_images``) a listed image is missing (entry named).
        ValueError: Unknown ``name``; invalid JSON (line, column named); an entry that is not an
            object, lacks a key, has an empty caption list, a blank caption, a bad id or an image
            path outside ``imgs/`` (file, entry and image named); training ids with a gap.
    """
    if name not in T2I_DATASETS:
        raise ValueError(f"unknown T2I dataset {name!r}; expected one of {list(T2I_DATASETS)}")
    fmt = T2I_DATASETS[name]
    dataset_dir = pathlib.Path(root).expanduser().absolute() / fmt.folder
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{fmt.title} folder {dataset_dir} is missing")
    image_dir = dataset_dir / IMAGE_FOLDER
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{fmt.title} image folder {image_dir} is missing")
    path = _annotation_path(dataset_dir, fmt)
    entries = _parse_entries(path, read_annotations(path), fmt, image_dir, check_images)
    _warn_duplicates(fmt, path, entries)
    by_split = {s: [e for e in entries if e.split == s] for s in T2I_SPLITS}
    train_images = _records(by_split["train"], _train_pids(by_split["train"], fmt, path),
                            "train")
    train = tuple(CaptionRow(r.pid, r.image_id, r.path, c) for r in train_images
                  for c in r.captions)
    data = TextImageData(name, str(dataset_dir), str(path), train_images, train,
                         _eval_split(by_split["val"], "val"),
                         _eval_split(by_split["test"], "test"))
    _log_folder_mismatch(fmt, data.train_images + data.val.images + data.test.images)
    logger.info("%s: train %d ids / %d images / %d captions; val %d / %d / %d; test %d / %d / %d",
                fmt.title, data.num_train_pids, len(train_images), len(train),
                len(data.val.pids), len(data.val.images), len(data.val.queries),
                len(data.test.pids), len(data.test.images), len(data.test.queries))
    return data


def read_cuhk_pedes(root: str | os.PathLike, check_images: bool = True) -> TextImageData:
    """Reads ``<root>/CUHK-PEDES`` (``reid_raw.json``; training ids ``1 .. P`` -> pids
    ``0 .. P-1``). See :func:`read_t2i_dataset`."""
    return read_t2i_dataset(CUHK_PEDES, root, check_images)


def read_icfg_pedes(root: str | os.PathLike, check_images: bool = True) -> TextImageData:
    """Reads ``<root>/ICFG-PEDES`` (``ICFG-PEDES.json`` or ``ICFG_PEDES.json``; the json's split,
    not the ``imgs/train|test`` folder, decides; training ids ``0 .. P-1``). See
    :func:`read_t2i_dataset`."""
    return read_t2i_dataset(ICFG_PEDES, root, check_images)


def read_rstpreid(root: str | os.PathLike, check_images: bool = True) -> TextImageData:
    """Reads ``<root>/RSTPReid`` (``data_captions.json``, image key ``img_path``; training ids
    ``0 .. P-1``). See :func:`read_t2i_dataset`."""
    return read_t2i_dataset(RSTPREID, root, check_images)


# --------------------------------------------------------------------------------------------------
# torchreid datasets
# --------------------------------------------------------------------------------------------------
def _image_dataset_class() -> type:
    """torchreid's ``ImageDataset`` (imported lazily: this module never loads torchreid)."""
    from ..._torchreid import tr
    return tr.data.ImageDataset


def _make_class(name: str) -> type:
    """A torchreid ``ImageDataset`` subclass reading the image side of dataset ``name``."""
    fmt = T2I_DATASETS[name]

    def __init__(self, root: str = "", **kwargs) -> None:
        data = read_t2i_dataset(self.t2i_name, root)
        self.root = os.path.abspath(os.path.expanduser(root))
        self.dataset_dir = data.dataset_dir
        self.t2i_data = data
        train = [(r.path, r.pid, T2I_CAMID) for r in data.train_images]
        query = [(r.path, r.pid, _QUERY_CAMID) for r in data.test.images]
        gallery = [(r.path, r.pid, T2I_CAMID) for r in data.test.images]
        _image_dataset_class().__init__(self, train, query, gallery, **kwargs)

    doc = (f"{fmt.title} (image side) as a torchreid image dataset.\n\n"
           "train: one item per training image, pid relabelled 0..P-1, camid 0; gallery: every\n"
           "test image (camid 0), the side PixelFade protects; query: the same test images with\n"
           "camid 1. Text queries are not a torchreid concept: they live in the T2I engine\n"
           "(``self.t2i_data.test.queries``); torchreid's image-to-image evaluation of this\n"
           "query/gallery pair is meaningless (each query finds itself).")
    class_name = fmt.title.replace("-", "")
    return type(class_name, (_image_dataset_class(),),
                {"__init__": __init__, "__doc__": doc, "t2i_name": name, "__module__": __name__})


_DATASETS = LazyDatasets(lambda: {name: _make_class(name) for name in T2I_DATASETS},
                         (fmt.title.replace("-", "") for fmt in T2I_DATASETS.values()))


def __getattr__(name: str) -> type:
    """The dataset classes by class name (``CUHKPEDES``, ``ICFGPEDES``, ``RSTPReid``), built on
    first use, so that pickled dataset instances (spawned DataLoader workers) find their class."""
    return _DATASETS.by_class_name(__name__, name)


def register_t2i_datasets() -> list[str]:
    """Registers the T2I datasets' image side with torchreid, idempotently, so ``-s/-t <name>``
    work: ``cuhk_pedes``, ``icfg_pedes``, ``rstpreid`` (data root = torchreid's ``root``).

    Returns:
        The registered names.
    """
    return _DATASETS.register()
