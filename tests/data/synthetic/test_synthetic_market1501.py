"""Tests of the synthetic Market-1501 layout writer."""
from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from torchreid_pixelfade.data.synthetic import (
    GENERATOR_RECORD,
    SyntheticConfig,
    make_synthetic_market1501,
)

TINY = SyntheticConfig(num_train_ids=4, num_test_ids=3, images_per_id_per_camera=3,
                       num_cameras=2, height=64, width=32, seed=7)
NAME = re.compile(r"^(\d{4})_c(\d)s1_(\d{6})_00\.jpg$")
SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def _parse(folder: pathlib.Path) -> list[tuple[int, int, int, pathlib.Path]]:
    items = []
    for path in sorted(folder.iterdir()):
        m = NAME.match(path.name)
        assert m, f"bad file name {path.name}"
        items.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), path))
    return items


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_market1501(root, TINY)
    return root


def test_layout_names_and_sizes(tiny_root: pathlib.Path) -> None:
    data_dir = tiny_root / "market1501" / "Market-1501-v15.09.15"
    assert GENERATOR_RECORD == "synthetic.json"
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([*SPLITS, GENERATOR_RECORD])
    manifest = json.loads((data_dir / "synthetic.json").read_text())
    assert manifest["config"]["seed"] == TINY.seed
    frames = []
    counts = {}
    for split in SPLITS:
        items = _parse(data_dir / split)
        counts[split] = len(items)
        for pid, cam, frame, path in items:
            assert 1 <= pid <= TINY.num_train_ids + TINY.num_test_ids
            assert 1 <= cam <= TINY.num_cameras
            frames.append(frame)
            with Image.open(path) as img:
                assert img.format == "JPEG"
                assert img.mode == "RGB"
                assert img.size == (TINY.width, TINY.height)
                img.load()
    assert len(frames) == len(set(frames)) == TINY.total_images
    assert counts == {"bounding_box_train": TINY.num_train, "query": TINY.num_query,
                      "bounding_box_test": TINY.num_gallery}
    assert counts["bounding_box_train"] == 4 * 2 * 3
    assert counts["query"] == 3 * 2
    assert counts["bounding_box_test"] == 3 * 2 * 2


def test_splits_disjoint_and_queries_matchable(tiny_root: pathlib.Path) -> None:
    data_dir = tiny_root / "market1501" / "Market-1501-v15.09.15"
    train = _parse(data_dir / "bounding_box_train")
    query = _parse(data_dir / "query")
    gallery = _parse(data_dir / "bounding_box_test")
    train_pids = {pid for pid, *_ in train}
    test_pids = {pid for pid, *_ in query} | {pid for pid, *_ in gallery}
    assert train_pids == set(range(1, TINY.num_train_ids + 1))
    num_ids = TINY.num_train_ids + TINY.num_test_ids
    assert test_pids == set(range(TINY.num_train_ids + 1, num_ids + 1))
    assert not train_pids & test_pids
    # One query per test identity and camera.
    assert sorted((pid, cam) for pid, cam, *_ in query) == sorted(
        itertools.product(sorted(test_pids), range(1, TINY.num_cameras + 1))
    )
    gallery_pid_cams = {(pid, cam) for pid, cam, *_ in gallery}
    for pid, cam, *_ in query:
        assert any((pid, c) in gallery_pid_cams for c in range(1, TINY.num_cameras + 1) if c != cam)


def test_torchreid_reader_loads_it(tiny_root: pathlib.Path) -> None:
    from torchreid_pixelfade._torchreid import tr

    dm = tr.data.ImageDataManager(
        root=str(tiny_root), sources="market1501", height=64, width=32, workers=0,
        use_gpu=False, batch_size_train=4, batch_size_test=4,
    )
    assert dm.num_train_pids == TINY.num_train_ids
    assert dm.num_train_cams == TINY.num_cameras
    assert len(dm.test_dataset["market1501"]["query"]) == TINY.num_query
    assert len(dm.test_dataset["market1501"]["gallery"]) == TINY.num_gallery
    batch = next(iter(dm.test_loader["market1501"]["query"]))
    assert batch["img"].shape == (4, 3, 64, 32)


def _read_all(data_dir: pathlib.Path) -> dict[str, bytes]:
    return {f"{split}/{path.name}": path.read_bytes()
            for split in SPLITS for path in sorted((data_dir / split).iterdir())}


def test_deterministic_and_seed_dependent(tiny_root: pathlib.Path, tmp_path: pathlib.Path) -> None:
    first = _read_all(tiny_root / "market1501" / "Market-1501-v15.09.15")
    again = _read_all(make_synthetic_market1501(tmp_path / "a", TINY))
    assert again == first
    other = _read_all(make_synthetic_market1501(tmp_path / "b", dataclasses.replace(TINY, seed=8)))
    assert sum(other.get(k) == v for k, v in first.items()) == 0


def test_second_call_is_noop(tmp_path: pathlib.Path) -> None:
    data_dir = make_synthetic_market1501(tmp_path, TINY)
    files = sorted(p for p in data_dir.rglob("*") if p.is_file())
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    assert make_synthetic_market1501(tmp_path, TINY) == data_dir
    assert sorted(p for p in data_dir.rglob("*") if p.is_file()) == files
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes


def test_other_config_or_incomplete_rebuilds(tmp_path: pathlib.Path) -> None:
    data_dir = make_synthetic_market1501(tmp_path, TINY)
    bigger = dataclasses.replace(TINY, num_test_ids=4)
    make_synthetic_market1501(tmp_path, bigger)
    assert len(list((data_dir / "query").iterdir())) == bigger.num_query
    assert json.loads((data_dir / "synthetic.json").read_text())["config"]["num_test_ids"] == 4
    # A missing image makes the dataset incomplete: it is rebuilt.
    victim = next((data_dir / "bounding_box_train").iterdir())
    victim.unlink()
    make_synthetic_market1501(tmp_path, bigger)
    assert victim.exists()
    assert not list(data_dir.rglob("*.tmp"))
    assert not list(data_dir.rglob(".*"))  # no temporary files nor in-progress marker


def test_refuses_to_overwrite_foreign_dataset(tmp_path: pathlib.Path) -> None:
    data_dir = tmp_path / "market1501" / "Market-1501-v15.09.15"
    (data_dir / "query").mkdir(parents=True)
    (data_dir / "query" / "0001_c1s1_000001_00.jpg").write_bytes(b"real data")
    with pytest.raises(FileExistsError):
        make_synthetic_market1501(tmp_path, TINY)
    assert (data_dir / "query" / "0001_c1s1_000001_00.jpg").read_bytes() == b"real data"


def test_identities_differ_more_than_same_identity_images(tiny_root: pathlib.Path) -> None:
    data_dir = tiny_root / "market1501" / "Market-1501-v15.09.15"
    items = [it for s in SPLITS for it in _parse(data_dir / s)]
    imgs = {path: np.asarray(Image.open(path), dtype=np.float32) for *_, path in items}
    same, diff = [], []
    for (p1, c1, _, a), (p2, c2, _, b) in itertools.combinations(items, 2):
        if c1 != c2:
            continue  # same camera only: the background is shared, only the person differs
        mad = float(np.abs(imgs[a] - imgs[b]).mean())
        (same if p1 == p2 else diff).append(mad)
    assert same and diff
    assert np.mean(diff) > 1.15 * np.mean(same)  # about 1.35 for seeds 0..4
