"""Helpers shared by the store tests: counting protectors, small datasets of copies, hashes."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

from PIL import Image

from torchreid_pixelfade.protect import Identity
from torchreid_pixelfade.store import ImageRecord, ProtectionIdentity, protect_records

IDENTITY = ProtectionIdentity(protector="identity", hparams={"steps": 3}, model="tiny",
                              weights_sha256="0" * 64, height=64, width=32, dataset="tiny")


class Counting(Identity):
    """The identity protector, counting the images it was given."""

    def __init__(self, during=None):
        super().__init__()
        self.seen = 0
        self.during = during

    def _protect(self, images, reference):
        self.seen += len(images)
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return images


def run(protector, records, out, root, identity=IDENTITY, **kwargs):
    """``protect_records`` with small batches and no progress bar."""
    return protect_records(protector, records, str(out), identity, str(root), batch_size=4,
                           progress=False, **kwargs)


def digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def copy_dataset(records, folder, count=6, ext=None):
    """Copies ``count`` records into ``folder`` (converted to ``ext`` if given); new records."""
    os.makedirs(folder, exist_ok=True)
    copies = []
    for record in records[:count]:
        name = os.path.basename(record.path)
        if ext:
            name = os.path.splitext(name)[0] + ext
            Image.open(record.path).save(os.path.join(folder, name))
        else:
            shutil.copy(record.path, os.path.join(folder, name))
        copies.append(ImageRecord(os.path.join(str(folder), name), name, record.pid,
                                  record.camid, record.split))
    return str(folder), copies


STALLING_WRITER = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, sys.argv[4])
    from store_helpers import IDENTITY, Counting
    from torchreid_pixelfade.store import ImageRecord, protect_records
    records = [ImageRecord(*r) for r in json.load(open(sys.argv[1]))]
    replace, calls, stall_at = os.replace, [], int(sys.argv[3])

    def stalling_replace(src, dst):  # the stall_at-th file write stops before its rename
        calls.append(dst)
        if len(calls) == stall_at:
            print("stalled", flush=True)
            time.sleep(600)
        replace(src, dst)

    os.replace = stalling_replace
    protect_records(Counting(), records, sys.argv[2], IDENTITY, os.path.dirname(records[0].path),
                    batch_size=2, progress=False)
""")


def stalled_writer(records, out, stall_at):
    """A ``protect_records`` process stopped before its ``stall_at``-th file rename (kill it)."""
    listing = os.path.join(os.path.dirname(str(out)), "records.json")
    with open(listing, "w") as handle:
        json.dump([[r.path, r.relpath, r.pid, r.camid, r.split] for r in records], handle)
    child = subprocess.Popen([sys.executable, "-c", STALLING_WRITER, listing, str(out),
                              str(stall_at), os.path.dirname(__file__)],
                             stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline().strip()
    if line != "stalled":
        child.kill()
        child.wait()
        raise AssertionError(f"the writer did not reach write {stall_at}: {line!r}")
    return child
