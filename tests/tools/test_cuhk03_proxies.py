"""tools/cuhk03_proxies.py: SYSU-MM01, RegDB and CUHK-PEDES proxies of a Market-1501 tree, read
back with the engines' own readers."""
import hashlib
import io
import logging
import pathlib

import numpy as np
import pytest
from PIL import Image

from torchreid_pixelfade.data.synthetic.captions import COLOUR_NAMES
from torchreid_pixelfade.engines.text_image.datasets import read_cuhk_pedes
from torchreid_pixelfade.engines.visible_infrared.datasets import read_regdb, read_sysu_mm01
from test_tools import load_tool

# pid -> (upper colour, lower colour) of the fake crops, named as colour_name names them
COLOURS = {"red": (210, 30, 30), "blue": (30, 50, 200), "green": (30, 170, 40),
           "yellow": (230, 210, 30)}
PERSON = {0: ("red", "blue"), 1: ("green", "yellow"), 3: ("blue", "red"), 5: ("yellow", "green"),
          2: ("red", "green"), 7: ("blue", "yellow")}
TRAIN = {0: (3, 2), 1: (2, 3), 3: (3, 3), 5: (2, 0)}  # pid -> (#camera A, #camera B) crops
TEST = {2: (3, 3), 7: (3, 2)}  # one per camera in query, the rest in bounding_box_test


@pytest.fixture(scope="module")
def tool():
    return load_tool("cuhk03_proxies")


def _crop(pid: int, cam: int, k: int) -> bytes:
    """A 64x32 JPEG: grey background, the person's upper and lower colours, a little noise."""
    upper, lower = (COLOURS[c] for c in PERSON[pid])
    image = np.full((64, 32, 3), 128, np.int64)
    image[8:33, 6:26] = upper
    image[33:60, 6:26] = lower
    image += np.random.default_rng([pid, cam, k]).integers(-6, 7, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _write_split(folder: pathlib.Path, counts: dict, query: bool) -> None:
    for pid, per_cam in counts.items():
        for cam, count in zip((1, 2), per_cam):
            for k in range(count):
                target = folder / ("query" if query and k == 0 else "bounding_box_test")
                if not query:
                    target = folder / "bounding_box_train"
                slot = k + 5 * (cam - 1)
                (target / f"{pid:04d}_c{cam}s1_{slot:06d}_00.jpg").write_bytes(_crop(pid, cam, k))


@pytest.fixture
def fake_cuhk03(tmp_path) -> pathlib.Path:
    """A tiny CUHK03 tree in Market-1501 layout (with a distractor and a non-image file)."""
    market = tmp_path / "cuhk03" / "market1501" / "Market-1501-v15.09.15"
    for name in ("bounding_box_train", "query", "bounding_box_test"):
        (market / name).mkdir(parents=True)
    _write_split(market, TRAIN, query=False)
    _write_split(market, TEST, query=True)
    (market / "bounding_box_test" / "-1_c1s1_000000_00.jpg").write_bytes(_crop(2, 1, 9))
    (market / "query" / "Thumbs.db").write_bytes(b"not an image")
    return tmp_path / "cuhk03"


def _tree_digest(folder: pathlib.Path) -> dict:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image, dtype=np.int64)


def _is_grey(path: str) -> bool:
    pixels = _pixels(path)
    return bool((pixels[..., 0] == pixels[..., 1]).all()
                and (pixels[..., 1] == pixels[..., 2]).all())


# --------------------------------------------------------------------------------------------------
# visible-infrared
# --------------------------------------------------------------------------------------------------
def test_sysu_proxy_reads_back(tool, fake_cuhk03, tmp_path):
    source = _tree_digest(fake_cuhk03)
    out = tmp_path / "out"
    assert tool.main(["vi", "--source", str(fake_cuhk03), "--output", str(out)]) == 0
    assert _tree_digest(fake_cuhk03) == source  # the source is never modified
    data = read_sysu_mm01(out)
    assert data.train_ids == (1, 2, 4, 6) and data.test_ids == (3, 8)  # CUHK03 pid + 1
    exp = out / "SYSU-MM01" / "exp"
    val, train = ((exp / name).read_text().strip().split(",") for name in ("val_id.txt",
                                                                            "train_id.txt"))
    assert val and train and not set(val) & set(train)
    assert len(data.train) == sum(a + b for a, b in TRAIN.values())
    for pid, (a, b) in TRAIN.items():
        cams = [r.camid for r in data.train if r.pid == pid + 1]
        assert sum(c in (1, 4) for c in cams) == a and sum(c in (3, 6) for c in cams) == b
    test = data.test.records()
    assert len(test) == sum(a + b for a, b in TEST.values())  # the distractor is left out
    assert {r.camid for r in test} == {1, 3, 4, 6}
    market = fake_cuhk03 / "market1501" / "Market-1501-v15.09.15"
    for record in data.test.visible_records():  # visible = the camera A crop, byte for byte
        matches = [p for p in market.rglob(f"{record.pid - 1:04d}_c1*.jpg")
                   if p.read_bytes() == pathlib.Path(record.path).read_bytes()]
        assert len(matches) == 1
    assert all(_is_grey(r.path) for r in data.train + test if r.modality == "infrared")
    assert not any(_is_grey(r.path) for r in data.train + test if r.modality == "visible")


def test_regdb_proxy_reads_back(tool, fake_cuhk03, tmp_path):
    out = tmp_path / "out"
    assert tool.main(["vi", "--source", str(fake_cuhk03), "--output", str(out),
                      "--regdb-per-id", "2"]) == 0
    first = read_regdb(out, 1)
    # pid 5 has no camera B crop: left out; at most 2 pairs per person
    assert sorted({r.relpath.split("/")[1] for r in first.train_visible}) == ["1", "2", "4"]
    assert sorted({r.relpath.split("/")[1] for r in first.test_thermal}) == ["3", "8"]
    assert len(first.train_visible) == len(first.train_thermal) == 6
    assert len(first.test_visible) == len(first.test_thermal) == 4
    assert sorted({r.pid for r in first.train}) == [0, 1, 2]
    assert all(_is_grey(r.path) for r in first.train_thermal + first.test_thermal)
    assert not any(_is_grey(r.path) for r in first.train_visible + first.test_visible)
    splits = set()
    for trial in range(1, 11):
        data = read_regdb(out, trial)
        test = {r.relpath.split("/")[1] for r in data.test_visible}
        train = {r.relpath.split("/")[1] for r in data.train_visible}
        assert len(test) == 2 and len(train) == 3 and not test & train
        splits.add(frozenset(test))
    assert len(splits) > 1  # later trials draw other test persons


def test_ir_proxy_is_grey_monotone_and_per_camera(tool):
    ramp = np.repeat(np.linspace(0, 255, 32).astype(np.uint8)[None, :, None], 3, axis=2)
    ramp = np.repeat(ramp, 16, axis=0)
    ramp[..., 0] = 255 - ramp[..., 0]  # colourful input
    image = Image.fromarray(ramp)
    outputs = {cam: np.asarray(tool.ir_proxy(image, tool.IR_CURVES[cam])).astype(int)
               for cam in (3, 6)}
    for out in outputs.values():
        assert out.shape == ramp.shape and (out[..., 0] == out[..., 2]).all()
    assert not np.array_equal(outputs[3], outputs[6])  # a tone curve per camera
    for curve in tool.IR_CURVES.values():
        assert np.all(np.diff(tool.tone_table(curve)) >= 0)


# --------------------------------------------------------------------------------------------------
# text-to-image
# --------------------------------------------------------------------------------------------------
def test_cuhk_pedes_proxy_reads_back(tool, fake_cuhk03, tmp_path):
    out = tmp_path / "out"
    assert tool.main(["t2i", "--source", str(fake_cuhk03), "--output", str(out)]) == 0
    data = read_cuhk_pedes(out)
    assert data.num_train_pids == 4
    assert len(data.train_images) == sum(a + b for a, b in TRAIN.values())
    assert len(data.train) == 2 * len(data.train_images)  # 2 captions per image
    assert data.test.pids == [5, 6]  # test ids follow the training ids 1..4
    assert len(data.test.images) == sum(a + b for a, b in TEST.values())
    assert not data.val.images
    market = fake_cuhk03 / "market1501" / "Market-1501-v15.09.15"
    for record in data.train_images + data.test.images:
        name = pathlib.Path(record.path).name
        pid = int(name[:4])
        assert len(set(record.captions)) == 2 and all(c.strip() for c in record.captions)
        source = next(market.rglob(name))
        assert source.read_bytes() == pathlib.Path(record.path).read_bytes()
        for caption in record.captions:
            words = set(caption.lower().rstrip(".").replace(",", "").split())
            assert words & set(COLOUR_NAMES)
            assert set(PERSON[pid]) <= words, caption  # both garment colours of the fake crop


def test_rerun_keeps_and_option_change_rebuilds(tool, fake_cuhk03, tmp_path):
    out = tmp_path / "out"
    args = ["t2i", "--source", str(fake_cuhk03), "--output", str(out)]
    assert tool.main(args) == 0
    before = _tree_digest(out)
    assert tool.main(args) == 0
    assert _tree_digest(out) == before  # complete: nothing rewritten
    assert tool.main(args + ["--limit-ids", "1"]) == 0
    data = read_cuhk_pedes(out)
    assert data.num_train_pids == 1 and data.test.pids == [2]
    assert len(list((out / "CUHK-PEDES" / "imgs").rglob("*.jpg"))) == 5 + 6  # no leftovers


def test_errors_name_the_problem(tool, fake_cuhk03, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    missing = tmp_path / "nowhere"
    assert tool.main(["vi", "--source", str(missing), "--output", str(tmp_path / "o")]) == 1
    assert str(missing) in caplog.text and "Market-1501" in caplog.text
    inside = fake_cuhk03 / "proxies"
    assert tool.main(["t2i", "--source", str(fake_cuhk03), "--output", str(inside)]) == 1
    assert "inside the source" in caplog.text and not inside.exists()
    bad = fake_cuhk03 / "market1501" / "Market-1501-v15.09.15" / "query" / "oops.jpg"
    bad.write_bytes(b"")
    assert tool.main(["t2i", "--source", str(fake_cuhk03), "--output", str(tmp_path / "o")]) == 1
    assert "oops.jpg: not a Market-1501 file name" in caplog.text
    with pytest.raises(SystemExit):
        tool.main(["vi", "--output", str(tmp_path / "o"), "--ir-cameras", "1"])


# --------------------------------------------------------------------------------------------------
# the real CUHK03 crops
# --------------------------------------------------------------------------------------------------
def test_real_cuhk03_small_proxies(tool, shared_data, tmp_path):
    out = tmp_path / "out"
    for command in ("vi", "t2i"):
        assert tool.main([command, "--source", shared_data, "--output", str(out),
                          "--limit-ids", "5"]) == 0
    sysu = read_sysu_mm01(out)
    assert len(sysu.train_ids) == 5 and len(sysu.test_ids) == 5
    infrared = sysu.test.infrared_records()
    assert infrared and all(_is_grey(r.path) for r in infrared[:5])
    assert all(r.camid in (1, 4) for r in sysu.test.visible_records())
    regdb = read_regdb(out, 1)
    assert len(regdb.test_visible) == len(regdb.test_thermal) > 0
    assert _is_grey(regdb.test_thermal[0].path) and not _is_grey(regdb.test_visible[0].path)
    pedes = read_cuhk_pedes(out)
    assert pedes.num_train_pids == 5 and len(pedes.test.pids) == 5
    captions = [c for r in pedes.train_images + pedes.test.images for c in r.captions]
    assert all(set(c.lower().replace(".", " ").replace(",", " ").split()) & set(COLOUR_NAMES)
               for c in captions)
