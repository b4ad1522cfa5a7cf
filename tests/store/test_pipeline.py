"""The batch loop overlaps reading, protecting and writing, and still behaves as the plain loop."""
import os
import threading
import time

import pytest

from torchreid_pixelfade.protect import Identity
from torchreid_pixelfade.store import ProtectedFolder
from torchreid_pixelfade.store import writer as writer_module
from store_helpers import run


def wait_for(condition, seconds=20.0):
    """Whether ``condition()`` became true within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


class Watching(Identity):
    """The identity protector; while protecting batch ``i`` it waits (with a deadline) until
    batch ``i + 1`` has been read and batch ``i - 1``'s files are on disk, recording whether
    each happened during its own call."""

    def __init__(self, batches, out_dir, reads):
        super().__init__()
        self.batches, self.out_dir, self.reads = batches, out_dir, reads
        self.calls, self.read_ahead, self.written_behind = 0, [], []

    def _protect(self, images, reference):
        i, self.calls = self.calls, self.calls + 1
        if i + 1 < len(self.batches):
            wanted = sum(len(b) for b in self.batches[:i + 2])
            self.read_ahead.append(wait_for(lambda: len(self.reads) >= wanted))
        if i > 0:
            previous = [os.path.join(self.out_dir, r.output_key) for r in self.batches[i - 1]]
            self.written_behind.append(wait_for(lambda: all(map(os.path.exists, previous))))
        return images


def test_next_batch_is_read_and_previous_written_while_one_is_protected(tiny_records, tmp_path,
                                                                      monkeypatch):
    root, records = tiny_records
    records = records[:12]
    reads = []
    load = writer_module.load_image_tensor
    monkeypatch.setattr(writer_module, "load_image_tensor",
                        lambda *a: reads.append(threading.current_thread().name) or load(*a))
    batches = [records[i:i + 4] for i in range(0, 12, 4)]
    protector = Watching(batches, str(tmp_path), reads)
    folder = run(protector, records, tmp_path, root)
    assert protector.read_ahead == [True, True]  # batches 2 and 3 read during 1 and 2
    assert protector.written_behind == [True, True]  # batches 1 and 2 written during 2 and 3
    assert set(reads) == {"pixelfade-load_0"}
    assert len(folder) == 12 and len(ProtectedFolder.open(str(tmp_path))) == 12


class FailingOn(Identity):
    def __init__(self, batch):
        super().__init__()
        self.batch, self.calls = batch, 0

    def _protect(self, images, reference):
        self.calls += 1
        if self.calls == self.batch:
            raise RuntimeError("interrupted")
        return images


def test_a_failure_leaves_exactly_the_batches_before_it_recorded(tiny_records, tmp_path):
    root, records = tiny_records
    with pytest.raises(RuntimeError, match="interrupted"):
        run(FailingOn(3), records[:16], tmp_path, root)
    recorded = ProtectedFolder.open(str(tmp_path))
    assert sorted(recorded.images) == sorted(r.output_key for r in records[:8])
    pngs = {os.path.relpath(os.path.join(d, f), tmp_path)
            for d, _, files in os.walk(tmp_path) for f in files if f.endswith(".png")}
    assert pngs == set(recorded.images)  # nothing of the failed or the next batch is written
