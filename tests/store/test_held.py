"""What held before and must keep holding: kill -9 safety, pickles refused, manifests kept."""
import os
import signal

import pytest
import torch
from torch import nn

from torchreid_pixelfade.io import read_image
from torchreid_pixelfade.models import load_weights
from torchreid_pixelfade.store import ProtectedFolder

from store_helpers import IDENTITY, Counting, copy_dataset, run, stalled_writer

def test_kill_9_mid_write_leaves_a_readable_folder_that_resumes(tiny_records, tmp_path):
    root, records = copy_dataset(tiny_records[1], tmp_path / "src", count=8)
    out = tmp_path / "out"
    child = stalled_writer(records, out, stall_at=7)  # manifest, 2 batches of 2, then 1 PNG
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert list(out.rglob(".tmp-*"))  # a write was cut short
    folder = ProtectedFolder.open(out)  # manifest + part: every finished batch
    assert len(folder) == 4
    for image in folder.entries():
        read_image(folder.protected_path(image))
    resumed = Counting()
    folder = run(resumed, records, out, root)
    assert len(folder) == 8 and resumed.seen == 4
    for image in folder.entries():
        read_image(folder.protected_path(image))


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_a_malicious_pickle_is_refused_on_load(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="evil.pth: cannot read weights"):
        load_weights(nn.Linear(2, 2), tmp_path / "evil.pth")
    assert not (tmp_path / "pwned-by-pickle").exists()


@pytest.mark.parametrize("text", ["{", '{"images": {}}', "[]"])
def test_a_corrupt_manifest_is_refused_and_kept(tiny_records, tmp_path, text):
    root, records = tiny_records
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match="manifest"):
        run(Counting(), records[:2], tmp_path, root)
    assert (tmp_path / "manifest.json").read_text() == text
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.rglob("*.png"))


def test_changed_settings_are_refused_after_a_run(tiny_records, tmp_path):
    root, records = tiny_records
    run(Counting(), records[:2], tmp_path, root)
    before = (tmp_path / "manifest.json").read_bytes()
    other = IDENTITY.__class__(**{**IDENTITY.__dict__, "height": 128})
    with pytest.raises(ValueError, match="other settings"):
        run(Counting(), records[:2], tmp_path, root, identity=other)
    assert (tmp_path / "manifest.json").read_bytes() == before
