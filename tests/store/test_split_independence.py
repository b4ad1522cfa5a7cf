"""With a seed, the stored PNGs do not depend on how the work is split into batches or runs.

``protect_records`` passes each image's output key to the protector, which seeds the image's
draws with (seed, key); under ``constraint_scope='image'`` nothing else couples an image to its
batch. The model runs with oneDNN (mkldnn) off: its convolutions pick kernels by batch size,
which can change a feature in its last bit and so, through the 8-bit rounding, a few pixels
(the protectors' own guarantee is what is tested here; see ``tests/protect/test_keyed_draws``).
"""
import hashlib
import json


from torchreid_pixelfade.protect import PixelFade
from torchreid_pixelfade.store import protect_records, protection_identity


def pngs(folder):
    """``{key: SHA-256}`` of the PNG files the folder's manifest lists."""
    manifest = json.loads((folder / "manifest.json").read_text())
    return {key: hashlib.sha256((folder / key).read_bytes()).hexdigest()
            for key in manifest["images"]}


def protect(random_model, records, root, out, batch_size, seed=5):
    """A fresh protector (as a new process would build it) over ``records`` into ``out``."""
    protector = PixelFade(random_model, steps=4, eps=5e-4, seed=seed)
    identity = protection_identity(protector, random_model, random_model.model, 64, 32, "tiny")
    protect_records(protector, records, str(out), identity, root, batch_size=batch_size,
                    progress=False)
    return pngs(out)


def test_batch_size_and_resuming_leave_the_pngs_unchanged(tiny_records, random_model, tmp_path,
                                                         native_kernels):
    root, records = tiny_records
    by_eight = protect(random_model, records, root, tmp_path / "eight", 8)
    assert len(by_eight) == len(records)
    assert protect(random_model, records, root, tmp_path / "three", 3) == by_eight
    half = len(records) // 2
    protect(random_model, records[:half], root, tmp_path / "resumed", 8)  # interrupted
    assert protect(random_model, records[::-1], root, tmp_path / "resumed", 5) == by_eight


def test_without_a_seed_runs_differ(tiny_records, random_model, tmp_path, native_kernels):
    root, records = tiny_records
    first = protect(random_model, records[:4], root, tmp_path / "first", 4, seed=None)
    second = protect(random_model, records[:4], root, tmp_path / "second", 4, seed=None)
    assert all(first[key] != second[key] for key in first)
