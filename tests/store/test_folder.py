import json

import numpy as np
import pytest

from torchreid_pixelfade.protect import Identity
from torchreid_pixelfade.store import ProtectedFolder, ProtectionIdentity, protect_records

IDENTITY = ProtectionIdentity(protector="identity", hparams={"quantize": True}, model="tiny",
                              weights_sha256="0" * 64, height=64, width=32, dataset="tiny")


@pytest.fixture(scope="module")
def stored(tiny_records, tmp_path_factory):
    root, records = tiny_records
    out = tmp_path_factory.mktemp("stored")
    protect_records(Identity(), records, str(out), IDENTITY, root, progress=False)
    return out, records


def test_entries_labels_and_pairs_follow_the_records(stored):
    out, records = stored
    folder = ProtectedFolder.open(out)
    assert folder.image_size == (64, 32) and folder.identity == IDENTITY
    for split in ("query", "gallery"):
        expected = sorted((r.output_key, r.pid, r.camid) for r in records if r.split == split)
        entries = folder.entries(split)
        assert [(e.key, e.pid, e.camid) for e in entries] == expected
        pids, camids = folder.labels(split)
        assert pids.tolist() == [e[1] for e in expected] and camids.dtype == np.int64
        protected, originals = folder.pairs(split)
        by_key = {r.output_key: r.path for r in records}
        assert originals == [by_key[e.key] for e in entries]
        assert all(p.startswith(str(out)) for p in protected)


def test_load_pairs_reads_protected_and_originals_in_step(stored):
    folder = ProtectedFolder.open(stored[0])
    protected, originals = folder.load_pairs("query")
    assert protected.shape == originals.shape == (12, 3, 64, 32)
    # identity protection: each stored image is its own original, up to 8-bit rounding
    assert (protected - originals).abs().max() <= 0.5 / 255 + 1e-6
    assert folder.load("gallery", "original", size=(32, 16)).shape == (12, 3, 32, 16)
    with pytest.raises(ValueError, match="which"):
        folder.load("query", "recovered")


def test_summary_counts_the_constraint_and_time(stored):
    summary = ProtectedFolder.open(stored[0]).summary()
    assert summary["name"] == "identity" and summary["constraint_met_fraction"] is None
    assert summary["seconds_per_image"] >= 0


def test_a_format_1_manifest_is_read(stored, tmp_path):
    out, _ = stored
    current = json.loads((out / "manifest.json").read_text())
    legacy = {"format": 1, "settings": {k: v for k, v in IDENTITY.to_dict().items()
                                        if k not in ("mean", "std", "dataset")},
              "source_root": current["source_root"], "images": current["images"],
              "skipped": [], "seconds": 2.4, "num_protected": 24}
    (tmp_path / "manifest.json").write_text(json.dumps(legacy))
    folder = ProtectedFolder.open(tmp_path)
    assert len(folder) == 24 and folder.image_size == (64, 32)
    assert folder.summary()["seconds_per_image"] == pytest.approx(0.1)
    # a run with the full identity may resume it (mean/std/dataset were not recorded then)
    assert folder.identity.accepts(IDENTITY)
    assert not folder.identity.accepts(ProtectionIdentity(**{**IDENTITY.__dict__,
                                                             "height": 128}))


def test_missing_and_corrupt_manifests_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest"):
        ProtectedFolder.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="manifest.json: corrupt manifest"):
        ProtectedFolder.open(tmp_path)
    (tmp_path / "manifest.json").write_text('{"images": {}}')
    with pytest.raises(ValueError, match="not a protected-folder manifest"):
        ProtectedFolder.open(tmp_path)
