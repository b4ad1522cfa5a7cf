import hashlib
import json
import os
import shutil

import pytest

from torchreid_pixelfade.io import ImageReadError
from torchreid_pixelfade.protect import Identity, PixelFade
from torchreid_pixelfade.store import (ImageRecord, load_image_tensor, load_stored_pairs,
                                       protect_records)

SETTINGS = {"protector": "pixelfade", "hparams": {"steps": 3}, "model": "tiny",
            "weights_sha256": "0" * 64, "height": 64, "width": 32}


class Counting(Identity):
    def __init__(self):
        super().__init__()
        self.seen = 0

    def _protect(self, images):
        self.seen += len(images)
        return images


def run(protector, records, out, root, settings=SETTINGS, **kwargs):
    return protect_records(protector, records, str(out), settings, root, 64, 32, batch_size=4,
                           progress=False, **kwargs)


def digest(paths):
    return [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]


def test_layout_manifest_and_stored_pixels(tiny_records, random_model, tmp_path):
    root, records = tiny_records
    before = digest(r.path for r in records)
    protector = PixelFade(random_model, steps=3, seed=0)
    manifest = run(protector, records, tmp_path, root)
    assert digest(r.path for r in records) == before  # originals untouched
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["settings"] == SETTINGS and on_disk["num_protected"] == len(records)
    for record in records:
        entry = on_disk["images"][record.output_key]
        assert record.output_key.endswith(".png")
        assert os.path.splitext(record.output_key)[0] == os.path.splitext(entry["source"])[0]
        assert {"distance", "constraint_met", "replaced_fraction", "pid", "camid"} <= set(entry)
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
    manifest = run(second, records, tmp_path, root)
    assert first.seen == 5 and second.seen == len(records) - 4
    assert len(manifest["images"]) == len(records)
    for key in list(mtimes)[1:]:
        assert os.stat(tmp_path / key).st_mtime_ns == mtimes[key]


def test_other_settings_are_refused(tiny_records, tmp_path):
    root, records = tiny_records
    run(Counting(), records[:2], tmp_path, root)
    with pytest.raises(ValueError, match="other settings"):
        run(Counting(), records[:2], tmp_path, root, settings={**SETTINGS, "model": "other"})


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
    manifest = run(Counting(), copies, tmp_path / "out", root, skip_corrupt=True)
    assert len(manifest["images"]) == 2
    assert manifest["skipped"][0]["source"] == copies[1].relpath
    assert "not a readable image" in manifest["skipped"][0]["error"]
    # a re-run does not trip over the listed file again
    assert len(run(Counting(), copies, tmp_path / "out", root, skip_corrupt=True)["skipped"]) == 1


def test_load_stored_pairs_reads_protected_and_originals_in_step(tiny_records, tmp_path):
    root, records = tiny_records
    manifest = run(Identity(), records[:5], tmp_path, root)
    protected, originals = load_stored_pairs(str(tmp_path), manifest)
    assert protected.shape == originals.shape == (5, 3, 64, 32)
    # identity protection: each stored image is its own original, up to 8-bit rounding
    assert (protected - originals).abs().max() <= 0.5 / 255 + 1e-6
    assert load_stored_pairs(str(tmp_path), manifest, 32, 16)[0].shape == (5, 3, 32, 16)
