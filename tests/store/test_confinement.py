"""Item 2: a protected folder is untrusted input; every path it names stays confined."""
import json
import os
import shutil

import pytest

from torchreid_pixelfade.attack.recovery import load_pairs
from torchreid_pixelfade.data.protected import ProtectedImageDataset
from torchreid_pixelfade.store import ProtectedFolder

from store_helpers import Counting, copy_dataset, run


@pytest.fixture
def folder(tiny_records, tmp_path):
    """``(out, source_root)``: a protected folder of 6 copies of the tiny images."""
    root, records = copy_dataset(tiny_records[1], tmp_path / "src", count=6)
    out = tmp_path / "out"
    run(Counting(), records, out, root)
    return out, root


def edit_manifest(out, change):
    path = out / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def first_key(out):
    return min(json.loads((out / "manifest.json").read_text())["images"])


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/passwd", "a/../../b.png", "a\x00.png",
                                 "C:/x.png", "..\\x.png", ""])
def test_image_keys_leaving_the_folder_are_refused_at_open(folder, bad):
    out, _ = folder

    def change(data):
        data["images"][bad] = data["images"].pop(first_key(out))

    edit_manifest(out, change)
    with pytest.raises(ValueError, match=r"manifest.json, image .*not a safe relative path"):
        ProtectedFolder.open(out)


@pytest.mark.parametrize("bad", ["../../../etc/shadow", "/etc/shadow", "x/../../y.jpg"])
def test_sources_leaving_the_source_root_are_refused_at_open(folder, bad):
    out, _ = folder
    key = first_key(out)
    edit_manifest(out, lambda data: data["images"][key].update(source=bad))
    with pytest.raises(ValueError, match=f"image '{key}'.*source.*not a safe relative path"):
        ProtectedFolder.open(out)


@pytest.mark.parametrize("bad", ["/", "relative/root", "/data/../etc", "/a\x00b"])
def test_unsafe_source_roots_are_refused_and_can_be_overridden(folder, bad):
    out, root = folder
    edit_manifest(out, lambda data: data.update(source_root=bad))
    with pytest.raises(ValueError, match="source_root"):
        ProtectedFolder.open(out)
    opened = ProtectedFolder.open(out, source_root=root)
    assert all(os.path.exists(p) for p in opened.pairs()[1])


def test_a_part_file_is_checked_like_the_manifest(folder):
    out, _ = folder
    (out / "manifest.part-0.jsonl").write_text(json.dumps(
        {"images": {"x.png": {"source": "../../etc/shadow", "split": "query", "pid": 1,
                              "camid": 0}}, "skipped": []}) + "\n")
    with pytest.raises(ValueError, match=r"manifest.part-0.jsonl.*not a safe relative path"):
        ProtectedFolder.open(out)


def test_links_out_of_the_folder_or_source_root_are_refused(folder, tmp_path):
    out, root = folder
    outside = tmp_path / "secret.png"
    shutil.copy(os.path.join(out, first_key(out)), outside)
    key = first_key(out)
    os.remove(out / key)
    os.symlink(outside, out / key)  # a stored image that is a link to a file elsewhere
    opened = ProtectedFolder.open(out)
    image = opened.images[key]
    with pytest.raises(ValueError, match=f"image '{key}'.*outside the folder"):
        opened.protected_path(image)
    with pytest.raises(ValueError, match="outside the folder"):
        opened.load("query")
    original = os.path.join(root, image.source)
    os.remove(original)
    os.symlink(outside, original)
    with pytest.raises(ValueError, match=f"image '{key}'.*outside the source root"):
        opened.original_path(image)


def test_a_link_inside_the_folder_is_followed(folder):
    out, root = folder
    key = first_key(out)
    os.rename(out / key, out / "real.png")
    os.symlink("real.png", out / key)
    opened = ProtectedFolder.open(out)
    assert opened.protected_path(opened.images[key]) == os.path.join(str(out), key)
    assert opened.original_path(opened.images[key]).startswith(root)


def test_readers_refuse_a_manifest_naming_outside_files(folder):
    out, _ = folder
    key = first_key(out)
    edit_manifest(out, lambda data: data["images"][key].update(source="/etc/shadow"))
    with pytest.raises(ValueError, match="not a safe relative path"):
        load_pairs(str(out))
    with pytest.raises(ValueError, match="not a safe relative path"):
        ProtectedImageDataset(root=str(out), verbose=False)
