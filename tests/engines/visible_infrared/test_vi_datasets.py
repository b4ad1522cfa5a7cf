"""Tests of the SYSU-MM01 / RegDB readers against the synthetic writers' exact layouts."""
from __future__ import annotations

import pathlib
import pickle
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from torchreid_pixelfade.data.synthetic.sysu_regdb import (
    SyntheticRegDBConfig,
    SyntheticSysuConfig,
    make_synthetic_regdb,
    make_synthetic_sysu_mm01,
)
from torchreid_pixelfade.engines.visible_infrared.datasets import (
    INFRARED,
    VISIBLE,
    read_id_file,
    read_regdb,
    read_sysu_mm01,
    register_vi_datasets,
)

SYSU = SyntheticSysuConfig(num_train_ids=5, num_val_ids=2, num_test_ids=4,
                           images_per_id_per_camera=2, missing_camera_prob=0.3, height=32,
                           width=16, seed=5)
REGDB = SyntheticRegDBConfig(num_ids=6, images_per_id=2, height=32, width=16, seed=5)
PID_DIR = re.compile(r"^\d{4}$")
SYSU_FILE = re.compile(r"^\d{4}\.jpg$")
REGDB_FILE = re.compile(r"^(male|female)_(front|back)_([vt])_(\d{5})_(\d+)\.bmp$")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("vi")
    make_synthetic_sysu_mm01(root, SYSU)
    make_synthetic_regdb(root, REGDB)
    return root


@pytest.fixture()
def copy(root: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A private copy of the synthetic datasets, for tests that damage them."""
    for name in ("SYSU-MM01", "RegDB"):
        shutil.copytree(root / name, tmp_path / name)
    return tmp_path


def _ids(root: pathlib.Path, name: str) -> list[int]:
    return [int(x) for x in (root / "SYSU-MM01" / "exp" / name).read_text().strip().split(",")]


def _sysu_disk(root: pathlib.Path) -> dict[tuple[int, int], int]:
    """``{(cam, pid): number of files}`` as found on disk."""
    return {(int(d.parent.name[3:]), int(d.name)): len(list(d.iterdir()))
            for d in (root / "SYSU-MM01").glob("cam*/*")}


# --------------------------------------------------------------------------------------------------
# SYSU-MM01
# --------------------------------------------------------------------------------------------------
def test_sysu_layout_is_exact(root: pathlib.Path) -> None:
    data_dir = root / "SYSU-MM01"
    assert sorted(p.name for p in data_dir.iterdir() if p.is_dir()) == [
        "cam1", "cam2", "cam3", "cam4", "cam5", "cam6", "exp"]
    for pid_dir in data_dir.glob("cam*/*"):
        assert PID_DIR.match(pid_dir.name), pid_dir
        names = sorted(p.name for p in pid_dir.iterdir())
        assert names == [f"{i:04d}.jpg" for i in range(1, 3)]
        assert all(SYSU_FILE.match(n) for n in names)
    for name in ("train_id.txt", "val_id.txt", "test_id.txt", "available_id.txt"):
        text = (data_dir / "exp" / name).read_text()
        assert len(text.splitlines()) == 1 and re.fullmatch(r"\d+(,\d+)*\n", text)
    train, val, test = (_ids(root, n) for n in ("train_id.txt", "val_id.txt", "test_id.txt"))
    assert (len(train), len(val), len(test)) == (5, 2, 4)
    assert sorted(train + val + test) == _ids(root, "available_id.txt") == list(range(1, 12))
    assert test != list(range(8, 12))  # the splits interleave, as SYSU-MM01's do


def test_sysu_every_id_has_both_modalities_and_some_cameras_are_missing(
        root: pathlib.Path) -> None:
    disk = _sysu_disk(root)
    assert len(disk) < 11 * 6  # some (id, camera) folders are absent
    for pid in range(1, 12):
        cams = {c for c, p in disk if p == pid}
        assert cams & {3, 6} and cams & {1, 2}, (pid, cams)


def test_sysu_reader_counts_modalities_and_splits(root: pathlib.Path) -> None:
    data = read_sysu_mm01(root)
    disk = _sysu_disk(root)
    train_ids = sorted(_ids(root, "train_id.txt") + _ids(root, "val_id.txt"))
    test_ids = _ids(root, "test_id.txt")
    assert list(data.train_ids) == train_ids and list(data.test_ids) == sorted(test_ids)
    assert len(data.train) == sum(n for (_, p), n in disk.items() if p in train_ids)
    assert {r.pid for r in data.train} == set(train_ids)
    assert all(r.split == "train" for r in data.train)
    for record in data.train + data.test.records():
        assert record.modality == (INFRARED if record.camid in (3, 6) else VISIBLE)
        assert record.relpath == f"cam{record.camid}/{record.pid:04d}/" + record.relpath[-8:]
        assert pathlib.Path(record.path).is_file()
    visible, infrared = data.test.visible_records(), data.test.infrared_records()
    assert {r.camid for r in visible} <= {1, 2, 4, 5} and {r.camid for r in infrared} <= {3, 6}
    assert len(visible) + len(infrared) == sum(n for (_, p), n in disk.items() if p in test_ids)
    for (cam, pid), n in disk.items():
        if pid in test_ids:
            assert len(data.test.files[cam][pid]) == n
            assert list(data.test.files[cam][pid]) == sorted(data.test.files[cam][pid])
        else:
            assert pid not in data.test.files[cam]


def test_sysu_indoor_mode_and_train_without_val(root: pathlib.Path) -> None:
    indoor = read_sysu_mm01(root, mode="indoor")
    assert {r.camid for r in indoor.test.visible_records()} <= {1, 2}
    assert {r.camid for r in indoor.test.infrared_records()} <= {3, 6}
    assert indoor.test.ir_cameras == (3, 6)  # the IR side is 3 and 6 in both modes
    assert sorted(indoor.test.files) == [1, 2, 3, 4, 5, 6]  # the protocol may pick either mode
    assert {r.camid for r in indoor.train} == {r.camid for r in read_sysu_mm01(root).train}
    no_val = read_sysu_mm01(root, include_val=False)
    assert list(no_val.train_ids) == sorted(_ids(root, "train_id.txt"))
    with pytest.raises(ValueError, match="mode"):
        read_sysu_mm01(root, mode="outdoor")


def test_sysu_missing_camera_folder_for_an_id_reads_fine(copy: pathlib.Path) -> None:
    test_id = _ids(copy, "test_id.txt")[0]
    for cam in (1, 4):
        shutil.rmtree(copy / "SYSU-MM01" / f"cam{cam}" / f"{test_id:04d}", ignore_errors=True)
    data = read_sysu_mm01(copy)
    assert test_id not in data.test.files[1] and test_id not in data.test.files[4]


def test_sysu_missing_exp_file_is_a_clear_error(copy: pathlib.Path) -> None:
    (copy / "SYSU-MM01" / "exp" / "val_id.txt").unlink()
    with pytest.raises(FileNotFoundError, match="val_id.txt"):
        read_sysu_mm01(copy)


def test_sysu_missing_camera_or_dataset_folder_is_a_clear_error(copy: pathlib.Path,
                                                                tmp_path: pathlib.Path) -> None:
    shutil.rmtree(copy / "SYSU-MM01" / "cam5")
    with pytest.raises(FileNotFoundError, match="cam5"):
        read_sysu_mm01(copy)
    with pytest.raises(FileNotFoundError, match="SYSU-MM01"):
        read_sysu_mm01(tmp_path / "nowhere")


@pytest.mark.parametrize("text,message", [
    ("1,2,x,4\n", "line 1: 'x'"),
    ("1,2\n3,4\n", "line 2"),
    ("\n\n", "no ids"),
    ("1,2,2\n", "repeated"),
    ("1,0\n", "line 1: '0'"),
])
def test_sysu_malformed_id_file_names_file_and_line(tmp_path: pathlib.Path, text: str,
                                                    message: str) -> None:
    path = tmp_path / "train_id.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        read_id_file(path)
    assert "train_id.txt" in str(info.value)


def test_id_file_accepts_spaces_and_no_trailing_newline(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "test_id.txt"
    path.write_text("3, 1 ,20")
    assert read_id_file(path) == [3, 1, 20]


# --------------------------------------------------------------------------------------------------
# RegDB
# --------------------------------------------------------------------------------------------------
def test_regdb_layout_is_exact(root: pathlib.Path) -> None:
    data_dir = root / "RegDB"
    for folder, letter in (("Visible", "v"), ("Thermal", "t")):
        persons = sorted(int(p.name) for p in (data_dir / folder).iterdir())
        assert persons == list(range(1, 7))
        for path in (data_dir / folder).glob("*/*"):
            m = REGDB_FILE.match(path.name)
            assert m and m.group(3) == letter and m.group(5) == path.parent.name, path
    idx = sorted(p.name for p in (data_dir / "idx").iterdir())
    assert idx == sorted(f"{s}_{m}_{t}.txt" for s in ("train", "test")
                         for m in ("visible", "thermal") for t in range(1, 11))
    line = (data_dir / "idx" / "train_thermal_4.txt").read_text().splitlines()[0]
    assert re.fullmatch(r"Thermal/\d+/\S+\.bmp \d+", line)


def test_regdb_pairs_share_frame_and_facing(root: pathlib.Path) -> None:
    visible = sorted(p.name.replace("_v_", "_") for p in (root / "RegDB/Visible").glob("*/*"))
    thermal = sorted(p.name.replace("_t_", "_") for p in (root / "RegDB/Thermal").glob("*/*"))
    assert visible == thermal and len(visible) == 12


def test_regdb_reader_trials(root: pathlib.Path) -> None:
    splits = set()
    for trial in range(1, 11):
        data = read_regdb(root, trial)
        assert data.trial == trial
        for records, modality in ((data.train_visible, VISIBLE), (data.train_thermal, INFRARED),
                                  (data.test_visible, VISIBLE), (data.test_thermal, INFRARED)):
            assert len(records) == 3 * 2
            assert {r.modality for r in records} == {modality}
            assert {r.camid for r in records} == {1 if modality == VISIBLE else 2}
            assert all(pathlib.Path(r.path).is_file() for r in records)
        assert {r.pid for r in data.train} == {0, 1, 2}
        persons = {r.relpath.split("/")[1] for r in data.train}
        assert not persons & {r.relpath.split("/")[1] for r in data.test_thermal}
        assert [r.pid for r in data.test_visible] == [r.pid for r in data.test_thermal]
        splits.add(frozenset(persons))
    assert len(splits) > 1  # trials differ (10 draws of 3 out of 6 persons)


def test_regdb_bad_line_names_file_and_line(copy: pathlib.Path) -> None:
    path = copy / "RegDB" / "idx" / "test_thermal_2.txt"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(" ", "\t") + " extra"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"test_thermal_2\.txt, line 3"):
        read_regdb(copy, 2)
    lines[2] = lines[2].split()[0] + " seven"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"test_thermal_2\.txt, line 3: label 'seven'"):
        read_regdb(copy, 2)
    lines[2] = lines[2].replace("Thermal/", "Visible/").replace("_t_", "_v_").split()[0] + " 0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"line 3: .* is in Visible/"):
        read_regdb(copy, 2)


def test_regdb_missing_files_are_clear_errors(copy: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="1..10"):
        read_regdb(copy, 11)
    (copy / "RegDB/idx/test_visible_3.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_visible_3\.txt is missing"):
        read_regdb(copy, 3)
    first = (copy / "RegDB/idx/train_visible_1.txt").read_text().splitlines()[1].split()[0]
    (copy / "RegDB" / first).unlink()
    with pytest.raises(FileNotFoundError, match=r"train_visible_1\.txt, line 2: image"):
        read_regdb(copy, 1)


# --------------------------------------------------------------------------------------------------
# torchreid datasets
# --------------------------------------------------------------------------------------------------
def test_register_is_idempotent_and_datasets_load(root: pathlib.Path) -> None:
    from torchreid_pixelfade._torchreid import image_datasets
    names = register_vi_datasets()
    classes = {name: image_datasets()[name] for name in names}
    assert register_vi_datasets() == names
    assert {name: image_datasets()[name] for name in names} == classes
    assert {"sysu_mm01", "sysu_mm01_indoor", "regdb", "regdb_trial10"} <= set(names)

    sysu = classes["sysu_mm01"](root=str(root), verbose=False)
    assert sorted({pid for _, pid, _, _ in sysu.train}) == list(range(7))
    assert {cam for _, _, cam, _ in sysu.query} <= {1, 2, 4, 5}
    assert {cam for _, _, cam, _ in sysu.gallery} <= {3, 6}
    assert len(sysu.query) + len(sysu.gallery) == len(sysu.vi_data.test.records())
    indoor = classes["sysu_mm01_indoor"](root=str(root), verbose=False, mode="query")
    assert {cam for _, _, cam, _ in indoor.query} <= {1, 2}

    clone = pickle.loads(pickle.dumps(sysu))  # spawned DataLoader workers pickle datasets
    assert type(clone) is type(sysu) and clone.gallery == sysu.gallery

    regdb = classes["regdb_trial3"](root=str(root), verbose=False)
    assert regdb.vi_data.trial == 3 and classes["regdb"].regdb_trial == 1
    assert sorted({pid for _, pid, _, _ in regdb.train}) == [0, 1, 2]
    assert {cam for _, _, cam, _ in regdb.query} == {1}
    assert {cam for _, _, cam, _ in regdb.gallery} == {2}


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------
def _mtimes(folder: pathlib.Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_writers_are_idempotent_and_deterministic(root: pathlib.Path,
                                                  tmp_path: pathlib.Path) -> None:
    before = _mtimes(root)
    make_synthetic_sysu_mm01(root, SYSU)
    make_synthetic_regdb(root, REGDB)
    assert _mtimes(root) == before
    make_synthetic_regdb(tmp_path, REGDB)
    for path in (root / "RegDB").rglob("*.bmp"):
        other = tmp_path / "RegDB" / path.relative_to(root / "RegDB")
        assert other.read_bytes() == path.read_bytes()


def test_writer_rebuilds_when_an_index_file_is_gone(tmp_path: pathlib.Path) -> None:
    small = SyntheticRegDBConfig(num_ids=2, images_per_id=1, height=32, width=16)
    make_synthetic_regdb(tmp_path, small)
    (tmp_path / "RegDB/idx/test_thermal_7.txt").unlink()
    make_synthetic_regdb(tmp_path, small)
    assert read_regdb(tmp_path, 7).test_thermal


def test_writer_rebuilds_on_a_new_config_and_refuses_foreign_data(
        tmp_path: pathlib.Path) -> None:
    small = SyntheticRegDBConfig(num_ids=2, images_per_id=1, height=32, width=16)
    make_synthetic_regdb(tmp_path, small)
    make_synthetic_regdb(tmp_path, SyntheticRegDBConfig(num_ids=4, images_per_id=1, height=32,
                                                        width=16))
    assert len(list((tmp_path / "RegDB/Thermal").glob("*/*.bmp"))) == 4
    foreign = tmp_path / "foreign"
    (foreign / "SYSU-MM01" / "cam1" / "0001").mkdir(parents=True)
    (foreign / "SYSU-MM01" / "cam1" / "0001" / "0001.jpg").write_bytes(b"real data")
    with pytest.raises(FileExistsError, match="refusing"):
        make_synthetic_sysu_mm01(foreign, SYSU)
    assert (foreign / "SYSU-MM01" / "cam1" / "0001" / "0001.jpg").read_bytes() == b"real data"


def test_single_channel_ir_files_are_read_as_grey(tmp_path: pathlib.Path) -> None:
    config = SyntheticSysuConfig(num_train_ids=1, num_val_ids=1, num_test_ids=1,
                                 images_per_id_per_camera=1, height=32, width=16, ir_channels=1)
    make_synthetic_sysu_mm01(tmp_path, config)
    data = read_sysu_mm01(tmp_path)
    ir = data.test.infrared_records()
    assert ir and all(Image.open(r.path).mode == "L" for r in ir)
    visible = data.test.visible_records()
    assert all(Image.open(r.path).mode == "RGB" for r in visible)
    grey = np.asarray(Image.open(ir[0].path).convert("RGB"))
    assert np.array_equal(grey[..., 0], grey[..., 2])
