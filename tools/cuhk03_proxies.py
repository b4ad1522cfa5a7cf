"""Real-image proxies of SYSU-MM01, RegDB and CUHK-PEDES, built from the CUHK03 crops.

The cross-modal engines read SYSU-MM01 / RegDB (visible-infrared) and CUHK-PEDES
(text-to-image), none of which is available here. This tool writes those exact layouts from the
real CUHK03 crops of ``../shared/data/cuhk03-detected`` (Market-1501 layout, 2 cameras), so the
engines can run on real pedestrians. The source is only read; every file goes through
:func:`torchreid_pixelfade.io.atomic_write_bytes`; a complete proxy made with the same options
from the same source files is never rewritten, and one made otherwise is rebuilt cleanly (the
record ``synthetic.json`` is written last; see ``torchreid_pixelfade/data/synthetic/build.py``).

``vi`` writes ``<output>/SYSU-MM01`` and ``<output>/RegDB``:

- Identities: CUHK03 pid ``p`` becomes SYSU / RegDB person ``p + 1`` (their ids are positive).
  Training ids are those of ``bounding_box_train``, test ids those of ``query`` +
  ``bounding_box_test``. SYSU's ``exp/val_id.txt`` holds every 4th training id
  (``--val-every``); readers train on train + val, as AGW does.
- Modalities: CUHK03 camera A (``c1``) gives the visible images, camera B (``c2``) the
  "infrared" ones, so the two modalities of a person come from different physical views, which
  is what makes the task cross-modal. In SYSU-MM01 camera A's crops are dealt in turn to the RGB
  cameras ``--rgb-cameras`` (default 1 and 4) and camera B's to the IR cameras ``--ir-cameras``
  (default 3 and 6), ``cam<c>/<pid:04d>/<nnnn>.jpg`` numbered from 0001 in source order.
  Visible JPEGs are the source files byte for byte.
- **The infrared images are a proxy, not thermal images**: luminance (ITU-R 601 luma) of the
  visible crop, a small Gaussian blur, then a per-camera tone curve (gamma, contrast, offset;
  :data:`IR_CURVES`), replicated to three equal channels. A thermal camera sees heat, not
  reflected light, so clothing colour and texture survive here where they would not in real
  infrared; the proxy removes colour only.
- RegDB: each person gets ``n = min(#A crops, #B crops, --regdb-per-id)`` visible / thermal
  pairs (CUHK03 has at most 5 crops per camera, real RegDB 10 pairs; persons with no crop in one
  camera are left out). Unlike RegDB's co-registered pairs, a pair here shows two different
  views. Files ``Visible/<k>/cuhk03_a_v_<frame:05d>_<k>.bmp`` and
  ``Thermal/<k>/cuhk03_b_t_<frame:05d>_<k>.bmp`` (the 5-field shape of RegDB's names; readers
  use the idx labels). Trial 1 of ``idx/{train,test}_{visible,thermal}_{1..10}.txt`` is CUHK03's
  own split; trials 2..10 draw, seeded, other test sets of the same size from all persons, as
  RegDB's trials (and CUHK03's original 20 splits) do (``--regdb-split fixed``: every trial is
  CUHK03's split). Labels are ``0 .. N-1`` in increasing person order within each split.

``t2i`` writes ``<output>/CUHK-PEDES``: ``imgs/CUHK03/<source file name>`` (byte copies) and
``reid_raw.json`` (``split``, ``captions``, ``file_path``, ``processed_tokens``, ``id``).
Training ids (CUHK03 train) are ``1 .. P`` in increasing CUHK03 pid order, as CUHK-PEDES
requires; test ids follow as ``P+1 ..``; there is no val split. **The captions are a proxy:
colour-derived, not human-written.** The dominant colour names of an upper-body and a
lower-body box (central columns) are counted over 16-level RGB bins named with
:func:`~torchreid_pixelfade.data.synthetic.captions.colour_name`; a second colour covering at
least :data:`SECOND_COLOUR_SHARE` of a region is mentioned too. Each image gets
``--captions-per-image`` (2) captions from different templates with seeded synonyms. Garment
words (top, shirt, pants ...) are generic, not detected; backgrounds and occlusions inside the
boxes can make a colour wrong.

``--limit-ids N`` keeps the first N ids of each split (small versions for tests and demos).

Example:
    python tools/cuhk03_proxies.py vi --source ../shared/data/cuhk03-detected \\
        --output /tmp/cuhk03-proxies
    python tools/cuhk03_proxies.py t2i --source ../shared/data/cuhk03-detected \\
        --output /tmp/cuhk03-proxies --limit-ids 20
"""
from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import io
import logging
import os
import pathlib
import re
import sys
import time
from typing import Callable, NamedTuple, Sequence

import numpy as np
from PIL import Image, ImageFilter

from torchreid_pixelfade.data.synthetic.build import build
from torchreid_pixelfade.data.synthetic.captions import (
    COLOUR_NAMES,
    colour_name,
    processed_tokens,
)
from torchreid_pixelfade.data.synthetic.market1501 import JPEG_QUALITY
from torchreid_pixelfade.io import atomic_write_bytes, atomic_write_json

logger = logging.getLogger("cuhk03_proxies")

GENERATOR = "tools/cuhk03_proxies.py"
#: Bumped whenever the images, captions or layout change, so an older proxy is rebuilt.
GENERATOR_VERSION = 1
#: ``../shared/data/cuhk03-detected`` next to the repository.
DEFAULT_SOURCE = pathlib.Path(__file__).resolve().parents[2] / "shared/data/cuhk03-detected"
MARKET_SUBDIR = ("market1501", "Market-1501-v15.09.15")
TRAIN_FOLDERS = ("bounding_box_train",)
TEST_FOLDERS = ("query", "bounding_box_test")
CAMERA_A, CAMERA_B = 1, 2
_NAME = re.compile(r"^(-1|\d{4})_c(\d)s\d+_(\d{6})_\d{2}\.jpg$")
SYSU_RGB, SYSU_IR = (1, 2, 4, 5), (3, 6)
SYSU_ID_FILES = ("train_id.txt", "val_id.txt", "test_id.txt", "available_id.txt")
REGDB_TRIALS = range(1, 11)
#: A second colour is named when it covers at least this share of a region.
SECOND_COLOUR_SHARE = 0.25
_TAG_REGDB, _TAG_CAPTION = 201, 202


# --------------------------------------------------------------------------------------------------
# Source
# --------------------------------------------------------------------------------------------------
class Crop(NamedTuple):
    """One source image: path, CUHK03 pid, camera (1 = A, 2 = B), slot and Market folder."""

    path: pathlib.Path
    pid: int
    cam: int
    slot: int
    folder: str


def find_market_dir(source: str | os.PathLike) -> pathlib.Path:
    """The Market-1501 folder (holding ``bounding_box_train``) of ``source``.

    ``source`` may be the data root (``cuhk03-detected``), its ``market1501`` folder or the
    ``Market-1501-v15.09.15`` folder itself.

    Raises:
        FileNotFoundError: None of these holds the three Market-1501 folders.
    """
    source = pathlib.Path(source).expanduser().absolute()
    for candidate in (source, source / MARKET_SUBDIR[1], source.joinpath(*MARKET_SUBDIR)):
        if all((candidate / f).is_dir() for f in TRAIN_FOLDERS + TEST_FOLDERS):
            return candidate
    folders = ", ".join(TRAIN_FOLDERS + TEST_FOLDERS)
    raise FileNotFoundError(f"{source}: no Market-1501 folders ({folders}) here or under "
                            f"{'/'.join(MARKET_SUBDIR)}")


def _parse_crop(folder: pathlib.Path, name: str) -> Crop | None:
    """The crop of file ``name``; None for a distractor (pid -1); ValueError for a bad name."""
    match = _NAME.match(name)
    if not match:
        raise ValueError(f"{folder / name}: not a Market-1501 file name PPPP_cCsS_KKKKKK_NN.jpg")
    if match[1] == "-1":
        return None
    cam = int(match[2])
    if cam not in (CAMERA_A, CAMERA_B):
        raise ValueError(f"{folder / name}: camera {cam}, but CUHK03 has cameras 1 (A) and 2 (B)")
    return Crop(folder / name, int(match[1]), cam, int(match[3]), folder.name)


def _scan(market_dir: pathlib.Path, folders: Sequence[str]) -> list[Crop]:
    """The crops of ``folders``, sorted by pid, camera, slot and folder."""
    crops = []
    for name in folders:
        folder = market_dir / name
        for entry in sorted(os.listdir(folder)):
            if entry.startswith(".") or not entry.lower().endswith(".jpg"):
                continue
            crop = _parse_crop(folder, entry)
            if crop is not None:
                crops.append(crop)
    return sorted(crops, key=lambda c: (c.pid, c.cam, c.slot, c.folder))


def _limit(crops: list[Crop], limit: int | None) -> list[Crop]:
    """The crops of the first ``limit`` pids (all when None)."""
    if limit is None:
        return crops
    keep = set(sorted({c.pid for c in crops})[:limit])
    return [c for c in crops if c.pid in keep]


def read_source(source: str | os.PathLike, limit_ids: int | None = None
                ) -> dict[str, list[Crop]]:
    """``{"train": crops, "test": crops}`` of the CUHK03 Market-1501 tree at ``source``.

    Raises:
        FileNotFoundError: ``source`` holds no Market-1501 tree.
        ValueError: A bad file name or camera, an empty split, or ids in both splits.
    """
    market_dir = find_market_dir(source)
    splits = {"train": _limit(_scan(market_dir, TRAIN_FOLDERS), limit_ids),
              "test": _limit(_scan(market_dir, TEST_FOLDERS), limit_ids)}
    for split, crops in splits.items():
        if not crops:
            raise ValueError(f"{market_dir}: no {split} images")
    both = sorted({c.pid for c in splits["train"]} & {c.pid for c in splits["test"]})
    if both:
        raise ValueError(f"{market_dir}: ids {both[:10]} are in both the train and test folders")
    logger.info("Source %s: %s", market_dir, ", ".join(
        f"{s} {len({c.pid for c in v})} ids / {len(v)} images" for s, v in splits.items()))
    return splits


def source_digest(crops: Sequence[Crop]) -> str:
    """SHA-256 of the crops' folder, name and size: a source change forces a rebuild."""
    digest = hashlib.sha256()
    for c in crops:
        digest.update(f"{c.folder}/{c.path.name}:{c.path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _by_pid_cam(crops: Sequence[Crop]) -> dict[int, dict[int, list[Crop]]]:
    """``{pid: {cam: crops in source order}}`` (both cameras present as keys)."""
    grouped: dict[int, dict[int, list[Crop]]] = {}
    for c in crops:
        grouped.setdefault(c.pid, {CAMERA_A: [], CAMERA_B: []})[c.cam].append(c)
    return grouped


# --------------------------------------------------------------------------------------------------
# Infrared proxy
# --------------------------------------------------------------------------------------------------
class ToneCurve(NamedTuple):
    """A grey tone curve: ``v -> clip(contrast * (v ** gamma - 0.5) + 0.5 + offset)``.

    Attributes:
        gamma: Exponent on the luminance in [0, 1].
        contrast: Slope around mid-grey.
        offset: Added brightness in [0, 1] units.
        blur: Gaussian blur radius in pixels, applied before the curve.
    """

    gamma: float
    contrast: float
    offset: float
    blur: float


@functools.lru_cache(maxsize=None)
def tone_table(curve: ToneCurve) -> list[int]:
    """The 256-entry lookup table of ``curve``."""
    v = (np.arange(256) / 255.0) ** curve.gamma
    out = np.clip(curve.contrast * (v - 0.5) + 0.5 + curve.offset, 0.0, 1.0)
    return [int(x) for x in np.round(out * 255)]


#: Tone curve per SYSU IR camera and for RegDB's thermal images (chosen by hand; proxies only).
IR_CURVES = {3: ToneCurve(0.8, 1.15, 0.03, 0.8), 6: ToneCurve(1.25, 0.9, -0.02, 1.0),
             "regdb": ToneCurve(0.7, 1.25, 0.0, 0.8)}


def ir_proxy(image: Image.Image, curve: ToneCurve) -> Image.Image:
    """The grey infrared proxy of a visible image: luma, blur, tone curve, 3 equal channels."""
    grey = image.convert("RGB").convert("L")
    if curve.blur > 0:
        grey = grey.filter(ImageFilter.GaussianBlur(curve.blur))
    return grey.point(tone_table(curve)).convert("RGB")


def encode(image: Image.Image, fmt: str) -> bytes:
    """``image`` as a JPEG (quality :data:`JPEG_QUALITY`) or BMP file."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": JPEG_QUALITY} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _open(crop: Crop) -> Image.Image:
    """The decoded RGB crop; ValueError naming the file when it is unreadable."""
    try:
        with Image.open(crop.path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise ValueError(f"{crop.path}: not a readable image ({error})") from error


def _record(dataset: str, crops: Sequence[Crop], options: dict, counts: dict[str, int],
            files: list[str]) -> dict:
    """The completeness record of one proxy (see ``data/synthetic/build.py``)."""
    return {"generator": GENERATOR, "generator_version": GENERATOR_VERSION, "dataset": dataset,
            "source_digest": source_digest(crops), "options": options, "counts": counts,
            "files": files}


# --------------------------------------------------------------------------------------------------
# SYSU-MM01
# --------------------------------------------------------------------------------------------------
def plan_sysu(crops: Sequence[Crop], rgb_cams: Sequence[int], ir_cams: Sequence[int]
              ) -> list[tuple[Crop, int, str]]:
    """``(crop, SYSU camera, path relative to SYSU-MM01/)`` of every crop: camera A's crops of a
    person dealt in turn to ``rgb_cams``, camera B's to ``ir_cams``, numbered per folder."""
    plan = []
    for pid, cams in _by_pid_cam(crops).items():
        for source_cam, targets in ((CAMERA_A, rgb_cams), (CAMERA_B, ir_cams)):
            numbers: collections.Counter = collections.Counter()
            for k, crop in enumerate(cams[source_cam]):
                cam = targets[k % len(targets)]
                numbers[cam] += 1
                plan.append((crop, cam, f"cam{cam}/{pid + 1:04d}/{numbers[cam]:04d}.jpg"))
    return plan


def sysu_id_lists(train_pids: Sequence[int], test_pids: Sequence[int], val_every: int
                  ) -> dict[str, list[int]]:
    """SYSU ids (pid + 1) per ``exp`` file; every ``val_every``-th training id is a val id."""
    train = sorted(p + 1 for p in train_pids)
    val = train[val_every - 1::val_every] or train[-1:]
    lists = {"train_id.txt": [i for i in train if i not in val], "val_id.txt": val,
             "test_id.txt": sorted(p + 1 for p in test_pids)}
    lists["available_id.txt"] = sorted(train + lists["test_id.txt"])
    if not lists["train_id.txt"]:
        raise ValueError("SYSU-MM01 needs at least 2 training ids (train and val lists)")
    return lists


def _write_sysu_image(data_dir: pathlib.Path, crop: Crop, cam: int, relpath: str) -> None:
    """Copies a visible crop, or writes the IR proxy of an IR camera's crop."""
    if cam in SYSU_IR:
        data = encode(ir_proxy(_open(crop), IR_CURVES[cam]), "JPEG")
    else:
        data = crop.path.read_bytes()
    atomic_write_bytes(data_dir / relpath, data)


def make_sysu(output: pathlib.Path, splits: dict[str, list[Crop]], args: argparse.Namespace
              ) -> pathlib.Path:
    """Writes ``<output>/SYSU-MM01`` (layout: module docstring); returns the folder."""
    crops = splits["train"] + splits["test"]
    plan = plan_sysu(crops, args.rgb_cameras, args.ir_cameras)
    ids = sysu_id_lists(sorted({c.pid for c in splits["train"]}),
                        sorted({c.pid for c in splits["test"]}), args.val_every)
    counts = collections.Counter({f"cam{c}": 0 for c in range(1, 7)})
    counts.update(relpath.split("/")[0] for _, _, relpath in plan)
    options = {"rgb_cameras": list(args.rgb_cameras), "ir_cameras": list(args.ir_cameras),
               "val_every": args.val_every, "limit_ids": args.limit_ids}
    record = _record("SYSU-MM01", crops, options, {**counts, "exp": 0},
                     [f"exp/{name}" for name in SYSU_ID_FILES])
    data_dir = output / "SYSU-MM01"

    def write() -> str:
        for crop, cam, relpath in plan:
            _write_sysu_image(data_dir, crop, cam, relpath)
        for name, values in ids.items():
            line = ",".join(map(str, values)) + "\n"
            atomic_write_bytes(data_dir / "exp" / name, line.encode())
        return f"{len(plan)} images"

    build(data_dir, record, [f"cam{c}" for c in range(1, 7)] + ["exp"], "SYSU-MM01 proxy", write)
    logger.info("SYSU-MM01 proxy: images %s; ids train %d, val %d, test %d",
                dict(sorted(counts.items())), len(ids["train_id.txt"]), len(ids["val_id.txt"]),
                len(ids["test_id.txt"]))
    return data_dir


# --------------------------------------------------------------------------------------------------
# RegDB
# --------------------------------------------------------------------------------------------------
class Pair(NamedTuple):
    """One RegDB pair: the visible (camera A) and thermal (camera B) crops and their paths."""

    visible: Crop
    thermal: Crop
    visible_path: str
    thermal_path: str


def plan_regdb(crops: Sequence[Crop], per_id: int) -> dict[int, list[Pair]]:
    """``{person: pairs}``: ``min(#A, #B, per_id)`` pairs per person, persons without a crop in
    one camera left out; frames numbered from 1 through the set."""
    plan, frame = {}, 0
    for pid, cams in sorted(_by_pid_cam(crops).items()):
        count = min(len(cams[CAMERA_A]), len(cams[CAMERA_B]), per_id)
        if not count:
            continue
        person, pairs = pid + 1, []
        for a, b in zip(cams[CAMERA_A][:count], cams[CAMERA_B][:count]):
            frame += 1
            pairs.append(Pair(a, b, f"Visible/{person}/cuhk03_a_v_{frame:05d}_{person}.bmp",
                              f"Thermal/{person}/cuhk03_b_t_{frame:05d}_{person}.bmp"))
        plan[person] = pairs
    return plan


def regdb_trials(train: Sequence[int], test: Sequence[int], seed: int, resample: bool
                 ) -> dict[int, tuple[list[int], list[int]]]:
    """``{trial: (train persons, test persons)}``: trial 1 (every trial unless ``resample``)
    is the given split; others a seeded draw of ``len(test)`` test persons from all."""
    everyone = sorted(train) + sorted(test)
    trials = {}
    for trial in REGDB_TRIALS:
        if trial == 1 or not resample:
            trials[trial] = (sorted(train), sorted(test))
            continue
        order = np.random.default_rng([seed, _TAG_REGDB, trial]).permutation(len(everyone))
        chosen = {everyone[int(i)] for i in order[:len(test)]}
        trials[trial] = ([p for p in everyone if p not in chosen], sorted(chosen))
    return trials


def _regdb_lines(plan: dict[int, list[Pair]], persons: Sequence[int], thermal: bool) -> bytes:
    """Idx file contents ``<relpath> <label>``, labels by increasing person."""
    return "".join(f"{pair.thermal_path if thermal else pair.visible_path} {label}\n"
                   for label, person in enumerate(sorted(persons))
                   for pair in plan[person]).encode()


def _write_regdb_pair(data_dir: pathlib.Path, pair: Pair) -> None:
    """Writes the visible crop and the thermal proxy of one pair as BMPs."""
    atomic_write_bytes(data_dir / pair.visible_path, encode(_open(pair.visible), "BMP"))
    thermal = ir_proxy(_open(pair.thermal), IR_CURVES["regdb"])
    atomic_write_bytes(data_dir / pair.thermal_path, encode(thermal, "BMP"))


def make_regdb(output: pathlib.Path, splits: dict[str, list[Crop]], args: argparse.Namespace
               ) -> pathlib.Path:
    """Writes ``<output>/RegDB`` (layout: module docstring); returns the folder."""
    crops = splits["train"] + splits["test"]
    plan = plan_regdb(crops, args.regdb_per_id)
    train, test = (sorted({c.pid + 1 for c in splits[s]} & plan.keys())
                   for s in ("train", "test"))
    if not train or not test:
        raise ValueError("RegDB proxy: no train or no test person has crops in both cameras")
    trials = regdb_trials(train, test, args.seed, args.regdb_split == "resample")
    pairs = sum(len(v) for v in plan.values())
    idx = [f"idx/{s}_{m}_{t}.txt" for t in REGDB_TRIALS for s in ("train", "test")
           for m in ("visible", "thermal")]
    options = {"per_id": args.regdb_per_id, "split": args.regdb_split, "seed": args.seed,
               "limit_ids": args.limit_ids}
    record = _record("RegDB", crops, options, {"Visible": pairs, "Thermal": pairs, "idx": 0}, idx)
    data_dir = output / "RegDB"

    def write() -> str:
        for pair in (p for person in plan.values() for p in person):
            _write_regdb_pair(data_dir, pair)
        for trial, split in trials.items():
            for name, persons_ in zip(("train", "test"), split):
                for thermal, word in ((False, "visible"), (True, "thermal")):
                    atomic_write_bytes(data_dir / "idx" / f"{name}_{word}_{trial}.txt",
                                       _regdb_lines(plan, persons_, thermal))
        return f"{2 * pairs} images"

    build(data_dir, record, ("Visible", "Thermal", "idx"), "RegDB proxy", write)
    logger.info("RegDB proxy: %d persons (train %d, test %d), %d pairs, split %s, %d skipped "
                "(no crop in one camera)", len(plan), len(train), len(test), pairs,
                args.regdb_split, len(_by_pid_cam(crops)) - len(plan))
    return data_dir


# --------------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------------
#: ``(top, bottom, left, right)`` fractions of the upper- and lower-body boxes.
REGIONS = {"upper": (0.20, 0.48, 0.30, 0.70), "lower": (0.56, 0.86, 0.30, 0.70)}
_LEVELS = 16  # RGB bins per channel


@functools.lru_cache(maxsize=_LEVELS ** 3)
def _bin_name(code: int) -> str:
    """The colour word of an RGB bin (its centre named by ``colour_name``)."""
    step = 256 // _LEVELS
    r, g, b = code // (_LEVELS * _LEVELS), (code // _LEVELS) % _LEVELS, code % _LEVELS
    return colour_name(tuple(step * v + step // 2 for v in (r, g, b)))


def colour_shares(pixels: np.ndarray) -> list[tuple[str, float]]:
    """``(colour word, share)`` of ``(..., 3)`` uint8 pixels, largest share first."""
    q = pixels.reshape(-1, 3).astype(np.int64) * _LEVELS // 256
    codes, counts = np.unique(q[:, 0] * _LEVELS * _LEVELS + q[:, 1] * _LEVELS + q[:, 2],
                              return_counts=True)
    shares: collections.Counter = collections.Counter()
    for code, count in zip(codes, counts):
        shares[_bin_name(int(code))] += count / len(q)
    return shares.most_common()


def region_colours(image: np.ndarray, region: str) -> list[str]:
    """The dominant colour word of a body region, then a second one if it covers at least
    :data:`SECOND_COLOUR_SHARE` of it."""
    top, bottom, left, right = REGIONS[region]
    h, w = image.shape[:2]
    box = image[int(top * h):max(int(bottom * h), int(top * h) + 1),
                int(left * w):max(int(right * w), int(left * w) + 1)]
    shares = colour_shares(box)
    return [shares[0][0]] + [n for n, s in shares[1:2] if s >= SECOND_COLOUR_SHARE]


_SUBJECTS = ("a person", "the person", "a pedestrian", "this pedestrian", "someone",
             "an individual")
_TOPS = ("top", "shirt", "upper garment", "jacket")
_BOTTOMS = ("pants", "trousers", "bottoms", "lower garment")


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _templates() -> list[Callable[[str, str, np.random.Generator], str]]:
    """Caption templates ``(upper colours, lower colours, rng) -> sentence``."""
    return [
        lambda u, lo, r: f"{_pick(r, _SUBJECTS)} is wearing {_a(u + ' ' + _pick(r, _TOPS))} and "
                         f"{lo} {_pick(r, _BOTTOMS)}.",
        lambda u, lo, r: f"{_pick(r, _SUBJECTS)} in {_a(u + ' ' + _pick(r, _TOPS))} with "
                         f"{lo} {_pick(r, _BOTTOMS)}.",
        lambda u, lo, r: f"{_pick(r, _SUBJECTS)} wears {lo} {_pick(r, _BOTTOMS)} and "
                         f"{_a(u + ' ' + _pick(r, _TOPS))}.",
        lambda u, lo, r: f"the upper body of {_pick(r, _SUBJECTS)} is dressed in {u}, and the "
                         f"lower body in {lo}.",
        lambda u, lo, r: f"{_pick(r, _SUBJECTS)} dressed in {u} on top and {lo} below.",
    ]


def make_captions(image: np.ndarray, rng: np.random.Generator, count: int = 2) -> list[str]:
    """``count`` colour-derived captions of an ``(H, W, 3)`` uint8 image, each from another
    template while templates last (a proxy, not a human description)."""
    upper, lower = (" and ".join(region_colours(image, r)) for r in ("upper", "lower"))
    templates = _templates()
    order = rng.permutation(len(templates))
    captions = [templates[int(order[k % len(order)])](upper, lower, rng) for k in range(count)]
    return [c[0].upper() + c[1:] for c in captions]


# --------------------------------------------------------------------------------------------------
# CUHK-PEDES
# --------------------------------------------------------------------------------------------------
def pedes_ids(splits: dict[str, list[Crop]]) -> dict[int, int]:
    """``{CUHK03 pid: json id}``: train pids -> ``1 .. P``, test pids -> ``P+1 ..``."""
    ordered = sorted({c.pid for c in splits["train"]}) + sorted({c.pid for c in splits["test"]})
    return {pid: k + 1 for k, pid in enumerate(ordered)}


def _pedes_entry(crop: Crop, split: str, json_id: int, seed: int, count: int) -> dict:
    """One ``reid_raw.json`` entry with the crop's captions."""
    rng = np.random.default_rng([seed, _TAG_CAPTION, crop.pid, crop.cam, crop.slot])
    captions = make_captions(np.asarray(_open(crop)), rng, count)
    return {"split": split, "captions": captions, "file_path": f"CUHK03/{crop.path.name}",
            "processed_tokens": [processed_tokens(c) for c in captions], "id": json_id}


def _colour_histogram(entries: Sequence[dict]) -> dict[str, int]:
    """How many captions mention each colour word (for the log)."""
    words: collections.Counter = collections.Counter()
    for entry in entries:
        for tokens in entry["processed_tokens"]:
            words.update(set(tokens))
    return {name: words[name] for name in COLOUR_NAMES if words[name]}


def make_cuhk_pedes(output: pathlib.Path, splits: dict[str, list[Crop]],
                    args: argparse.Namespace) -> pathlib.Path:
    """Writes ``<output>/CUHK-PEDES`` (layout: module docstring); returns the folder."""
    crops = splits["train"] + splits["test"]
    names = collections.Counter(c.path.name for c in crops)
    repeated = [n for n, k in names.items() if k > 1]
    if repeated:
        raise ValueError(f"CUHK-PEDES proxy: source file names repeat across folders: "
                         f"{repeated[:5]}")
    ids = pedes_ids(splits)
    options = {"captions_per_image": args.captions_per_image, "seed": args.seed,
               "limit_ids": args.limit_ids}
    record = _record("CUHK-PEDES", crops, options, {"imgs": len(crops)}, ["reid_raw.json"])
    data_dir = output / "CUHK-PEDES"

    def write() -> str:
        entries = []
        for split in ("train", "test"):
            for crop in splits[split]:
                atomic_write_bytes(data_dir / "imgs" / "CUHK03" / crop.path.name,
                                   crop.path.read_bytes())
                entries.append(_pedes_entry(crop, split, ids[crop.pid], args.seed,
                                            args.captions_per_image))
        atomic_write_json(data_dir / "reid_raw.json", entries)
        logger.info("CUHK-PEDES proxy: captions mentioning each colour %s",
                    _colour_histogram(entries))
        return f"{len(entries)} images, {sum(len(e['captions']) for e in entries)} captions"

    build(data_dir, record, ("imgs",), "CUHK-PEDES proxy", write, ("reid_raw.json",))
    logger.info("CUHK-PEDES proxy: train %d ids / %d images, test %d ids / %d images, "
                "%d captions per image", len({c.pid for c in splits["train"]}),
                len(splits["train"]), len({c.pid for c in splits["test"]}), len(splits["test"]),
                args.captions_per_image)
    return data_dir


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def _cameras(allowed: Sequence[int], kind: str) -> Callable[[str], int]:
    """argparse type: a camera number of ``allowed``."""
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) not in allowed:
            raise argparse.ArgumentTypeError(f"{kind} cameras are {list(allowed)}, got {text!r}")
        return int(text)
    return parse


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``vi`` and ``t2i`` sub-commands."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--source", default=str(DEFAULT_SOURCE),
                        help="CUHK03 data root or its Market-1501 folder (read only)")
    common.add_argument("--output", required=True, help="root the dataset folders go under")
    common.add_argument("--limit-ids", type=_positive, default=None,
                        help="keep the first N ids of each split")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    vi = sub.add_parser("vi", parents=[common], help="SYSU-MM01 and RegDB proxies")
    vi.add_argument("--rgb-cameras", nargs="+", type=_cameras(SYSU_RGB, "RGB"), default=[1, 4])
    vi.add_argument("--ir-cameras", nargs="+", type=_cameras(SYSU_IR, "IR"), default=[3, 6])
    vi.add_argument("--val-every", type=_positive, default=4,
                    help="every N-th SYSU training id goes to val_id.txt")
    vi.add_argument("--regdb-per-id", type=_positive, default=5,
                    help="at most N visible/thermal pairs per RegDB person")
    vi.add_argument("--regdb-split", choices=("resample", "fixed"), default="resample")
    t2i = sub.add_parser("t2i", parents=[common], help="CUHK-PEDES proxy")
    t2i.add_argument("--captions-per-image", type=_positive, default=2)
    return parser


def _check_output(output: pathlib.Path, source: pathlib.Path) -> None:
    """Raises ValueError when the output would be inside the source (never modified)."""
    if output == source or source in output.parents:
        raise ValueError(f"--output {output} is inside the source {source}, which is read only")


def main(argv: Sequence[str] | None = None) -> int:
    """Writes the proxies of the chosen sub-command; returns 0, or 1 after logging an error."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(message)s")
    start = time.perf_counter()
    try:
        output = pathlib.Path(args.output).expanduser().resolve()
        _check_output(output, pathlib.Path(args.source).expanduser().resolve())
        splits = read_source(args.source, args.limit_ids)
        if args.command == "vi":
            make_sysu(output, splits, args)
            make_regdb(output, splits, args)
        else:
            make_cuhk_pedes(output, splits, args)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        logger.error("cuhk03_proxies %s: %s", args.command, error)
        return 1
    logger.info("cuhk03_proxies %s: done in %.1f s (output %s)", args.command,
                time.perf_counter() - start, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
