"""Tests of the CUHK-PEDES / ICFG-PEDES / RSTPReid readers against the synthetic writers'
exact formats, and of the writers."""
from __future__ import annotations

import json
import pathlib
import pickle
import re
import shutil
import string

import pytest

from torchreid_pixelfade.data.synthetic.pedes import (
    SyntheticCuhkPedesConfig,
    SyntheticIcfgPedesConfig,
    SyntheticRstpReidConfig,
    make_synthetic_cuhk_pedes,
    make_synthetic_icfg_pedes,
    make_synthetic_rstpreid,
)
from torchreid_pixelfade.engines.text_image.datasets import (
    read_cuhk_pedes,
    read_icfg_pedes,
    read_rstpreid,
    read_t2i_dataset,
    register_t2i_datasets,
)

SIZE = dict(num_train_ids=4, num_test_ids=3, height=32, width=16, seed=3)
CUHK = SyntheticCuhkPedesConfig(num_val_ids=2, images_per_id=2, **SIZE)
ICFG = SyntheticIcfgPedesConfig(images_per_id=2, **SIZE)
RSTP = SyntheticRstpReidConfig(num_val_ids=1, **SIZE)
ICFG_FILE = re.compile(r"^(train|test)/(\d{4})/\2_\d{3}_\d{2}_\d{4}(morning|noon|afternoon)_\d+_0"
                       r"\.jpg$")
RSTP_FILE = re.compile(r"^(\d{4})_c(\d{1,2})_\d{4}\.jpg$")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("t2i")
    make_synthetic_cuhk_pedes(root, CUHK)
    make_synthetic_icfg_pedes(root, ICFG)
    make_synthetic_rstpreid(root, RSTP)
    return root


@pytest.fixture()
def copy(root: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A private copy of the synthetic datasets, for tests that change them."""
    for name in ("CUHK-PEDES", "ICFG-PEDES", "RSTPReid"):
        shutil.copytree(root / name, tmp_path / name)
    return tmp_path


def _entries(path: pathlib.Path) -> list[dict]:
    return json.loads(path.read_text())


def _rewrite(path: pathlib.Path, entries: list[dict]) -> None:
    path.write_text(json.dumps(entries))


# --------------------------------------------------------------------------------------------------
# Exact formats
# --------------------------------------------------------------------------------------------------
def test_cuhk_format_and_irra_semantics(root: pathlib.Path) -> None:
    entries = _entries(root / "CUHK-PEDES" / "reid_raw.json")
    assert all(set(e) == {"split", "captions", "file_path", "processed_tokens", "id"}
               for e in entries)
    assert all(len(e["captions"]) == 2 == len(e["processed_tokens"]) for e in entries)
    assert {e["id"] for e in entries if e["split"] == "train"} == {1, 2, 3, 4}
    assert {e["id"] for e in entries if e["split"] == "val"} == {5, 6}
    assert {e["id"] for e in entries if e["split"] == "test"} == {7, 8, 9}
    for e in entries:
        assert (root / "CUHK-PEDES" / "imgs" / e["file_path"]).is_file()
        stripped = "".join(ch for ch in e["captions"][0].lower() if ch not in string.punctuation)
        assert e["processed_tokens"][0] == stripped.split()

    data = read_cuhk_pedes(root)
    train = [e for e in entries if e["split"] == "train"]
    # one row per caption, pid = id - 1, image ids count training images in json order
    assert [row.caption for row in data.train] == [c for e in train for c in e["captions"]]
    assert [row.pid for row in data.train] == [e["id"] - 1 for e in train for _ in e["captions"]]
    assert [row.image_id for row in data.train] == [k for k, e in enumerate(train)
                                                    for _ in e["captions"]]
    assert data.num_train_pids == 4
    # file_path verbatim (folders of the source sets, names never parsed)
    assert [r.path for r in data.train_images] == [
        str(root / "CUHK-PEDES" / "imgs" / e["file_path"]) for e in train]
    assert all(r.relpath == "imgs/" + e["file_path"] for r, e in zip(data.train_images, train))
    # test: raw ids, all captions are queries, all images the gallery
    test = [e for e in entries if e["split"] == "test"]
    assert [r.pid for r in data.test.images] == [e["id"] for e in test]
    assert [q.caption for q in data.test.queries] == [c for e in test for c in e["captions"]]
    assert all(data.test.images[q.image_id].pid == q.pid for q in data.test.queries)
    assert [r.image_id for r in data.test.images] == list(range(len(test)))
    assert {r.camid for r in data.test.images} == {0}
    assert len(data.val.images) == 4 and data.val.pids == [5, 6]
    irra = data.test.as_irra_dict()
    assert irra["caption_pids"] == [q.pid for q in data.test.queries]
    assert irra["img_paths"] == [r.path for r in data.test.images]


def test_icfg_format_json_split_wins_over_folders(root: pathlib.Path) -> None:
    folder = root / "ICFG-PEDES"
    assert (folder / "ICFG-PEDES.json").is_file() and not (folder / "ICFG_PEDES.json").exists()
    entries = _entries(folder / "ICFG-PEDES.json")
    assert {e["split"] for e in entries} == {"train", "test"}
    assert all(len(e["captions"]) == 1 for e in entries)
    assert all(ICFG_FILE.match(e["file_path"]) for e in entries)
    assert {e["id"] for e in entries if e["split"] == "train"} == {0, 1, 2, 3}
    # some persons are stored under the other split's folder
    misplaced = {e["split"] for e in entries if not e["file_path"].startswith(e["split"] + "/")}
    assert misplaced == {"train", "test"}

    data = read_icfg_pedes(root)
    assert [r.split for r in data.train_images] == ["train"] * 8
    assert any(r.relpath.startswith("imgs/test/") for r in data.train_images)
    assert any(r.relpath.startswith("imgs/train/") for r in data.test.images)
    assert sorted({row.pid for row in data.train}) == [0, 1, 2, 3]
    assert data.val.images == () and data.val.queries == ()
    assert data.test.pids == [4, 5, 6] and len(data.test.queries) == 6


def test_icfg_accepts_the_readme_spelling(copy: pathlib.Path, tmp_path: pathlib.Path) -> None:
    folder = copy / "ICFG-PEDES"
    expected = read_icfg_pedes(copy)
    (folder / "ICFG-PEDES.json").rename(folder / "ICFG_PEDES.json")
    assert read_icfg_pedes(copy).train == expected.train
    # the writer can produce either spelling
    other = SyntheticIcfgPedesConfig(num_train_ids=2, num_test_ids=1, images_per_id=1,
                                     height=16, width=8, json_name="ICFG_PEDES.json")
    make_synthetic_icfg_pedes(tmp_path / "w", other)
    assert (tmp_path / "w" / "ICFG-PEDES" / "ICFG_PEDES.json").is_file()
    assert read_icfg_pedes(tmp_path / "w").num_train_pids == 2


def test_rstpreid_format(root: pathlib.Path) -> None:
    entries = _entries(root / "RSTPReid" / "data_captions.json")
    assert all(set(e) == {"id", "img_path", "captions", "split"} for e in entries)
    assert not any((root / "RSTPReid" / "imgs").glob("*/"))  # flat
    by_id: dict[int, set[int]] = {}
    for e in entries:
        match = RSTP_FILE.match(e["img_path"])
        assert match and int(match[1]) == e["id"] and len(e["captions"]) == 2
        by_id.setdefault(e["id"], set()).add(int(match[2]))
    assert all(len(cams) == 5 for cams in by_id.values())  # 5 images from 5 cameras
    assert {e["id"] for e in entries if e["split"] == "train"} == {0, 1, 2, 3}

    data = read_rstpreid(root)
    assert sorted({row.pid for row in data.train}) == [0, 1, 2, 3]
    assert len(data.train) == 4 * 5 * 2
    assert data.val.pids == [4] and data.test.pids == [5, 6, 7]


# --------------------------------------------------------------------------------------------------
# Id conventions and errors
# --------------------------------------------------------------------------------------------------
def test_cuhk_zero_based_or_gapped_training_ids_raise(copy: pathlib.Path) -> None:
    path = copy / "CUHK-PEDES" / "reid_raw.json"
    entries = _entries(path)
    shifted = [dict(e, id=e["id"] - 1) if e["split"] == "train" else e for e in entries]
    _rewrite(path, shifted)
    with pytest.raises(ValueError, match="training id 0 is below 1"):
        read_cuhk_pedes(copy)
    gapped = [dict(e, id=e["id"] + 1) if e["split"] == "train" and e["id"] >= 3 else e
              for e in entries]
    _rewrite(path, gapped)
    with pytest.raises(ValueError, match=r"contiguous from 1.*lack \[3\]"):
        read_cuhk_pedes(copy)


def test_icfg_and_rstp_training_ids_start_at_zero(copy: pathlib.Path) -> None:
    path = copy / "RSTPReid" / "data_captions.json"
    _rewrite(path, [dict(e, id=e["id"] + 1) if e["split"] == "train" else e
                    for e in _entries(path)])
    with pytest.raises(ValueError, match=r"contiguous from 0.*lack \[0\]"):
        read_rstpreid(copy)


def test_other_split_names_count_as_val(copy: pathlib.Path) -> None:
    path = copy / "CUHK-PEDES" / "reid_raw.json"
    _rewrite(path, [dict(e, split="validation") if e["split"] == "val" else e
                    for e in _entries(path)])
    assert read_cuhk_pedes(copy).val.pids == [5, 6]


def test_bad_json_names_file_and_line(copy: pathlib.Path) -> None:
    path = copy / "RSTPReid" / "data_captions.json"
    path.write_text('[\n{"id": 0,\n "img_path": }\n]')
    with pytest.raises(ValueError, match=r"captions\.json, line 3, column \d+: not valid JSON"):
        read_rstpreid(copy)
    path.write_text('{"id": 0}')
    with pytest.raises(ValueError, match="expected a JSON list"):
        read_rstpreid(copy)


def test_missing_image_names_the_entry(copy: pathlib.Path) -> None:
    entries = _entries(copy / "CUHK-PEDES" / "reid_raw.json")
    victim = entries[3]["file_path"]
    (copy / "CUHK-PEDES" / "imgs" / victim).unlink()
    with pytest.raises(FileNotFoundError, match=rf"entry 3 \(file_path '{re.escape(victim)}'\)"):
        read_cuhk_pedes(copy)
    assert len(read_cuhk_pedes(copy, check_images=False).train) == 16


@pytest.mark.parametrize("captions, message", [([], "empty caption list"),
                                               (["ok", "  "], "caption 1 is not a non-empty"),
                                               ("a string", "'captions' must be a list")])
def test_bad_captions_name_the_entry(copy: pathlib.Path, captions: object, message: str) -> None:
    path = copy / "ICFG-PEDES" / "ICFG-PEDES.json"
    entries = _entries(path)
    entries[5]["captions"] = captions
    _rewrite(path, entries)
    with pytest.raises(ValueError, match=rf"entry 5 \(file_path '[^']+'\): {message}"):
        read_icfg_pedes(copy)


@pytest.mark.parametrize("change, message", [
    (lambda e: e.pop("img_path"), r"missing key\(s\) \['img_path'\]"),
    (lambda e: e.update(img_path="../outside.jpg"), "must stay inside"),
    (lambda e: e.update(id=-2), "'id' must be a non-negative integer"),
    (lambda e: e.update(id=True), "'id' must be a non-negative integer"),
])
def test_malformed_entries_raise(copy: pathlib.Path, change, message: str) -> None:
    path = copy / "RSTPReid" / "data_captions.json"
    entries = _entries(path)
    change(entries[2])
    _rewrite(path, entries)
    with pytest.raises(ValueError, match=rf"entry 2\b.*{message}"):
        read_rstpreid(copy)


def test_missing_folders_and_unknown_name(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match="CUHK-PEDES folder"):
        read_cuhk_pedes(tmp_path)
    (tmp_path / "ICFG-PEDES" / "imgs").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="ICFG-PEDES.json or ICFG_PEDES.json"):
        read_icfg_pedes(tmp_path)
    with pytest.raises(ValueError, match="unknown T2I dataset"):
        read_t2i_dataset("flickr30k", tmp_path)


# --------------------------------------------------------------------------------------------------
# torchreid datasets
# --------------------------------------------------------------------------------------------------
def test_register_is_idempotent_and_datasets_load(root: pathlib.Path) -> None:
    from torchreid_pixelfade._torchreid import image_datasets
    names = register_t2i_datasets()
    classes = {name: image_datasets()[name] for name in names}
    assert register_t2i_datasets() == names == ["cuhk_pedes", "icfg_pedes", "rstpreid"]
    assert {name: image_datasets()[name] for name in names} == classes

    cuhk = classes["cuhk_pedes"](root=str(root), verbose=False)
    assert sorted({pid for _, pid, _, _ in cuhk.train}) == [0, 1, 2, 3]
    assert len(cuhk.train) == 8  # one item per image, not per caption
    assert [p for p, _, _, _ in cuhk.gallery] == [r.path for r in cuhk.t2i_data.test.images]
    assert [p for p, _, _, _ in cuhk.query] == [p for p, _, _, _ in cuhk.gallery]
    assert {c for _, _, c, _ in cuhk.gallery} == {0} and {c for _, _, c, _ in cuhk.query} == {1}
    clone = pickle.loads(pickle.dumps(cuhk))  # spawned DataLoader workers pickle datasets
    assert type(clone) is type(cuhk) and clone.gallery == cuhk.gallery
    icfg = classes["icfg_pedes"](root=str(root), verbose=False, mode="gallery")
    assert len(icfg.data) == 6
    rstp = classes["rstpreid"](root=str(root), verbose=False)
    assert rstp.num_train_pids == 4


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------
def _mtimes(folder: pathlib.Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_writers_are_idempotent_and_deterministic(root: pathlib.Path,
                                                  tmp_path: pathlib.Path) -> None:
    before = _mtimes(root)
    make_synthetic_cuhk_pedes(root, CUHK)
    make_synthetic_icfg_pedes(root, ICFG)
    make_synthetic_rstpreid(root, RSTP)
    assert _mtimes(root) == before
    make_synthetic_rstpreid(tmp_path, RSTP)
    for path in (root / "RSTPReid").rglob("*"):
        if path.is_file():
            other = tmp_path / "RSTPReid" / path.relative_to(root / "RSTPReid")
            assert other.read_bytes() == path.read_bytes()


def test_writer_rebuilds_on_new_config_and_refuses_foreign_data(tmp_path: pathlib.Path) -> None:
    small = SyntheticRstpReidConfig(num_train_ids=1, num_val_ids=0, num_test_ids=1,
                                    images_per_id=1, height=16, width=8)
    make_synthetic_rstpreid(tmp_path, small)
    make_synthetic_rstpreid(tmp_path, SyntheticRstpReidConfig(
        num_train_ids=2, num_val_ids=0, num_test_ids=1, images_per_id=1, height=16, width=8))
    assert read_rstpreid(tmp_path).num_train_pids == 2
    assert len(list((tmp_path / "RSTPReid" / "imgs").iterdir())) == 3
    # ICFG: switching the json spelling leaves a single annotation file
    icfg = SyntheticIcfgPedesConfig(num_train_ids=1, num_test_ids=1, images_per_id=1,
                                    height=16, width=8)
    make_synthetic_icfg_pedes(tmp_path, icfg)
    make_synthetic_icfg_pedes(tmp_path, SyntheticIcfgPedesConfig(
        num_train_ids=1, num_test_ids=1, images_per_id=1, height=16, width=8,
        json_name="ICFG_PEDES.json"))
    assert sorted(p.name for p in (tmp_path / "ICFG-PEDES").glob("*.json")) == [
        "ICFG_PEDES.json", "synthetic.json"]
    foreign = tmp_path / "foreign" / "CUHK-PEDES"
    (foreign / "imgs").mkdir(parents=True)
    (foreign / "reid_raw.json").write_text("[]")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        make_synthetic_cuhk_pedes(tmp_path / "foreign", CUHK)
    assert (foreign / "reid_raw.json").read_text() == "[]"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="num_val_ids must be 0"):
        SyntheticIcfgPedesConfig(num_val_ids=1)
    with pytest.raises(ValueError, match="json_name"):
        SyntheticIcfgPedesConfig(json_name="icfg.json")
    with pytest.raises(ValueError, match="one camera per image"):
        SyntheticRstpReidConfig(num_cameras=4)
