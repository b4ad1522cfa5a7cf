"""Item 1: a run never writes over an input, directly or through a link."""
import os

import pytest

from store_helpers import Counting, copy_dataset, digest, run


def test_output_equal_to_a_png_dataset_folder_is_refused(tiny_records, tmp_path):
    root, records = copy_dataset(tiny_records[1], tmp_path / "prid", ext=".png")
    before = {r.path: digest(r.path) for r in records}
    with pytest.raises(ValueError, match=r"would overwrite the input .*\.png"):
        run(Counting(), records, root, root)
    assert {r.path: digest(r.path) for r in records} == before
    assert sorted(os.listdir(root)) == sorted(os.path.basename(p) for p in before)  # no writes


def test_output_reaching_the_inputs_through_a_link_is_refused(tiny_records, tmp_path):
    root, records = copy_dataset(tiny_records[1], tmp_path / "prid", ext=".png")
    before = {r.path: digest(r.path) for r in records}
    os.symlink(root, tmp_path / "link")
    with pytest.raises(ValueError, match="would overwrite the input"):
        run(Counting(), records, tmp_path / "link", root)
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(root, out / "prid")  # a folder link inside the output folder
    under = [r.__class__(r.path, os.path.join("prid", r.relpath), r.pid, r.camid, r.split)
             for r in records]  # the same inputs, relative to the folder above
    with pytest.raises(ValueError, match="would overwrite the input"):
        run(Counting(), under, out, tmp_path)
    assert {r.path: digest(r.path) for r in records} == before


def test_output_inside_the_source_folder_is_allowed_when_nothing_collides(tiny_records,
                                                                          tmp_path):
    root, records = copy_dataset(tiny_records[1], tmp_path / "market")
    before = {r.path: digest(r.path) for r in records}
    folder = run(Counting(), records, root, root)  # .jpg inputs, .png outputs beside them
    assert len(folder) == len(records)
    assert {r.path: digest(r.path) for r in records} == before
    assert len(run(Counting(), records, os.path.join(root, "protected"), root)) == len(records)


def test_a_dataset_file_in_the_way_is_refused(tiny_records, tmp_path):
    root, records = copy_dataset(tiny_records[1], tmp_path / "mixed")
    in_the_way = os.path.join(root, records[0].output_key)  # a .png original, not a record
    with open(in_the_way, "wb") as handle:
        handle.write(b"a file of the dataset")
    with pytest.raises(ValueError, match=r"already holds .*" + records[0].output_key):
        run(Counting(), records, root, root)
    with open(in_the_way, "rb") as handle:
        assert handle.read() == b"a file of the dataset"
    assert not os.path.exists(os.path.join(root, "manifest.json"))
