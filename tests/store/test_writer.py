import hashlib
import json
import os
import shutil

import pytest

from torchreid_pixelfade.io import ImageReadError, load_image_tensor
from torchreid_pixelfade.protect import Identity, PixelFade
from torchreid_pixelfade.store import (ImageRecord, ProtectedFolder, ProtectionIdentity,
                                       protect_records)
from torchreid_pixelfade.store.folder import PART_PATTERN

IDENTITY = ProtectionIdentity(protector="pixelfade", hparams={"steps": 3}, model="tiny",
                              weights_sha256="0" * 64, height=64, width=32)


class Counting(Identity):
    def __init__(self):
        super().__init__()
        self.seen = 0

    def _protect(self, images, reference):
        self.seen += len(images)
        return images


class Interrupt(Exception):
    pass


class FailingAfter(Counting):
    """Protects ``batches`` batches, then fails (an interrupted run)."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def _protect(self, images, reference):
        if self.batches == 0:
            raise Interrupt
        self.batches -= 1
        return super()._protect(images, reference)


def run(protector, records, out, root, identity=IDENTITY, **kwargs):
    return protect_records(protector, records, str(out), identity, root, batch_size=4,
                           progress=False, **kwargs)


def digest(paths):
    return [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]


def test_layout_manifest_and_stored_pixels(tiny_records, random_model, tmp_path):
    root, records = tiny_records
    before = digest(r.path for r in records)
    folder = run(PixelFade(random_model, steps=3, seed=0), records, tmp_path, root)
    assert digest(r.path for r in records) == before  # originals untouched
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(folder.to_manifest()))
    assert on_disk["format"] == 2 and on_disk["identity"] == IDENTITY.to_dict()
    assert len(on_disk["images"]) == len(records)
    assert not list(tmp_path.glob(PART_PATTERN))  # parts merged at the end
    for record in records:
        entry = on_disk["images"][record.output_key]
        assert record.output_key.endswith(".png")
        assert os.path.splitext(record.output_key)[0] == os.path.splitext(entry["source"])[0]
        assert {"distance", "constraint_met", "replaced_fraction", "pid", "camid",
                "seconds"} <= set(entry)
    # stored PNGs are 64x32 RGB and noise-like, far from the originals
    stored = load_image_tensor(str(tmp_path / records[0].output_key), 64, 32)
    original = load_image_tensor(records[0].path, 64, 32)
    assert stored.shape == (3, 64, 32) and (stored - original).abs().mean() > 0.1


def test_resume_skips_finished_images(tiny_records, tmp_path):
    root, records = tiny_records
    first = Counting()
    run(first, records[:5], tmp_path, root)
    mtimes = {r.output_key: os.stat(tmp_path / r.output_key).st_mtime_ns for r in records[:5]}
    os.remove(tmp_path / records[0].output_key)  # a file lost after the manifest was written
    second = Counting()
    folder = run(second, records, tmp_path, root)
    assert first.seen == 5 and second.seen == len(records) - 4
    assert len(folder) == len(records)
    for key in list(mtimes)[1:]:
        assert os.stat(tmp_path / key).st_mtime_ns == mtimes[key]


def test_a_finished_folder_is_not_rewritten(tiny_records, tmp_path):
    root, records = tiny_records
    run(Counting(), records, tmp_path, root)
    mtime = os.stat(tmp_path / "manifest.json").st_mtime_ns
    again = Counting()
    run(again, records, tmp_path, root)
    assert again.seen == 0 and os.stat(tmp_path / "manifest.json").st_mtime_ns == mtime


def test_interrupted_run_is_readable_and_resumes(tiny_records, tmp_path):
    root, records = tiny_records
    with pytest.raises(Interrupt):
        run(FailingAfter(batches=2), records, tmp_path, root)
    parts = list(tmp_path.glob(PART_PATTERN))
    assert len(parts) == 1 and len(parts[0].read_text().splitlines()) == 2  # one line per batch
    assert len(ProtectedFolder.open(tmp_path)) == 8  # manifest + part: the finished batches
    resumed = Counting()
    folder = run(resumed, records, tmp_path, root)
    assert resumed.seen == len(records) - 8 and len(folder) == len(records)
    assert not list(tmp_path.glob(PART_PATTERN))


def test_a_line_cut_short_is_ignored_and_redone(tiny_records, tmp_path):
    root, records = tiny_records
    with pytest.raises(Interrupt):
        run(FailingAfter(batches=2), records, tmp_path, root)
    part = next(tmp_path.glob(PART_PATTERN))
    text = part.read_text()
    part.write_text(text[:len(text) - 20])  # the second line was being written
    assert len(ProtectedFolder.open(tmp_path)) == 4
    resumed = Counting()
    run(resumed, records, tmp_path, root)
    assert resumed.seen == len(records) - 4


def test_a_damaged_line_before_the_last_is_an_error(tiny_records, tmp_path):
    root, records = tiny_records
    with pytest.raises(Interrupt):
        run(FailingAfter(batches=2), records, tmp_path, root)
    part = next(tmp_path.glob(PART_PATTERN))
    part.write_text("{not json\n" + part.read_text())
    with pytest.raises(ValueError, match=r"line 1: corrupt manifest part"):
        ProtectedFolder.open(tmp_path)


def test_other_settings_are_refused(tiny_records, tmp_path):
    root, records = tiny_records
    run(Counting(), records[:2], tmp_path, root)
    other = ProtectionIdentity(**{**IDENTITY.__dict__, "model": "other"})
    with pytest.raises(ValueError, match="other settings \\(model: 'tiny' -> 'other'\\)"):
        run(Counting(), records[:2], tmp_path, root, identity=other)


def corrupt_copy(records, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    copies = []
    for r in records[:3]:
        shutil.copy(r.path, folder / os.path.basename(r.path))
        copies.append(ImageRecord(str(folder / os.path.basename(r.path)),
                                  os.path.basename(r.path), r.pid, r.camid, r.split))
    (folder / copies[1].relpath).write_bytes(b"garbage")
    return str(folder), copies


def test_corrupt_input_raises_naming_the_file(tiny_records, tmp_path):
    root, copies = corrupt_copy(tiny_records[1], tmp_path)
    with pytest.raises(ImageReadError, match=copies[1].relpath):
        run(Counting(), copies, tmp_path / "out", root)


def test_corrupt_input_can_be_skipped_and_listed(tiny_records, tmp_path):
    root, copies = corrupt_copy(tiny_records[1], tmp_path)
    folder = run(Counting(), copies, tmp_path / "out", root, skip_corrupt=True)
    assert len(folder) == 2
    assert folder.skipped[0]["source"] == copies[1].relpath
    assert "not a readable image" in folder.skipped[0]["error"]
    # a re-run does not trip over the listed file again
    assert len(run(Counting(), copies, tmp_path / "out", root, skip_corrupt=True).skipped) == 1


def test_a_stale_part_of_another_rank_does_not_undo_a_later_fix(tiny_records, tmp_path):
    """A rank killed before merging left a part saying an input was unreadable; the input is
    fixed and the run resumed by another part: the image must end up stored, not skipped."""
    root, copies = corrupt_copy(tiny_records[1], tmp_path)
    out = tmp_path / "out"
    run(Counting(), copies, out, root, skip_corrupt=True, part=1)
    bad = copies[1].relpath
    skip = {"images": {}, "skipped": [{"source": bad, "error": "not a readable image"}]}
    (out / "manifest.part-1.jsonl").write_text(json.dumps(skip) + "\n")  # never merged
    shutil.copy(tiny_records[1][1].path, os.path.join(root, bad))  # the input is fixed
    folder = run(Counting(), copies, out, root, part=0)
    assert copies[1].output_key in folder.images and not folder.skipped
    reopened = ProtectedFolder.open(out)
    assert copies[1].output_key in reopened.images and not reopened.skipped
