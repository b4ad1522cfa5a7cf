"""Item 4: resume retries skipped inputs, verifies what it keeps, and keeps one source root."""
import json
import logging
import os

import pytest

from torchreid_pixelfade.io import read_image
from torchreid_pixelfade.store import ProtectedFolder

from store_helpers import Counting, copy_dataset, digest, run


def test_a_skipped_input_is_retried_once_fixed(tiny_records, tmp_path, caplog):
    root, records = copy_dataset(tiny_records[1], tmp_path / "src", count=5)
    with open(records[1].path, "rb") as handle:
        good = handle.read()
    with open(records[1].path, "wb") as handle:
        handle.write(b"garbage")
    out = tmp_path / "out"
    folder = run(Counting(), records, out, root, skip_corrupt=True)
    assert len(folder) == 4 and [s["source"] for s in folder.skipped] == [records[1].relpath]
    with open(records[1].path, "wb") as handle:
        handle.write(good)
    again = Counting()
    with caplog.at_level(logging.INFO):
        folder = run(again, records, out, root)  # without skip_corrupt
    assert again.seen == 1 and len(folder) == 5 and folder.skipped == []
    assert "4 of 5 images already protected" in caplog.text
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["skipped"] == [] and len(on_disk["images"]) == 5


def test_a_skipped_input_still_broken_is_an_error_without_skip_corrupt(tiny_records, tmp_path):
    root, records = copy_dataset(tiny_records[1], tmp_path / "src", count=3)
    with open(records[2].path, "wb") as handle:
        handle.write(b"garbage")
    out = tmp_path / "out"
    run(Counting(), records, out, root, skip_corrupt=True)
    mtime = os.stat(out / "manifest.json").st_mtime_ns
    assert len(run(Counting(), records, out, root, skip_corrupt=True).skipped) == 1
    assert os.stat(out / "manifest.json").st_mtime_ns == mtime  # nothing new: not rewritten
    with pytest.raises(ValueError, match=records[2].relpath):
        run(Counting(), records, out, root)


def test_stored_pngs_are_recorded_with_size_and_hash(tiny_records, tmp_path):
    root, records = tiny_records
    run(Counting(), records[:4], tmp_path, root)
    for key, entry in json.loads((tmp_path / "manifest.json").read_text())["images"].items():
        assert entry["png_sha256"] == digest(tmp_path / key)
        assert entry["png_bytes"] == os.path.getsize(tmp_path / key)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_a_damaged_stored_png_is_redone(tiny_records, tmp_path, damage):
    root, records = tiny_records
    run(Counting(), records[:6], tmp_path, root)
    path = tmp_path / records[2].output_key
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "empty": b"",
               "flip": data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]}[damage]
    path.write_bytes(damaged)
    again = Counting()
    run(again, records[:6], tmp_path, root)
    assert again.seen == 1 and path.read_bytes() == data
    read_image(path)


def test_a_damaged_png_of_an_older_folder_without_hashes_is_redone(tiny_records, tmp_path):
    root, records = tiny_records
    run(Counting(), records[:6], tmp_path, root)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for entry in manifest["images"].values():  # as written before hashes were recorded
        entry.pop("png_sha256", None)
        entry.pop("png_bytes", None)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    path = tmp_path / records[3].output_key
    path.write_bytes(path.read_bytes()[:100])
    again = Counting()
    run(again, records[:6], tmp_path, root)
    assert again.seen == 1
    read_image(path)


def test_another_source_root_is_refused(tiny_records, tmp_path):
    root, records = tiny_records
    out = tmp_path / "out"
    run(Counting(), records[:4], out, root)
    other_root, copies = copy_dataset(records, tmp_path / "other", count=4)
    with pytest.raises(ValueError, match=f"source root.*{other_root}.*{root}|"
                                         f"source root.*{root}.*{other_root}"):
        run(Counting(), copies, out, other_root)
    assert ProtectedFolder.open(out).source_root == root
    os.symlink(root, tmp_path / "link")  # the same folder under another name is accepted
    linked = [r.__class__(os.path.join(tmp_path, "link", r.relpath), r.relpath, r.pid, r.camid,
                          r.split) for r in records[:4]]
    assert len(run(Counting(), linked, out, str(tmp_path / "link"))) == 4


def test_a_kept_image_is_not_rewritten(tiny_records, tmp_path):
    root, records = tiny_records
    run(Counting(), records[:4], tmp_path, root)
    path = tmp_path / records[0].output_key
    mtime = os.stat(path).st_mtime_ns
    run(Counting(), records[:8], tmp_path, root)
    assert os.stat(path).st_mtime_ns == mtime
