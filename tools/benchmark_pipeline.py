"""Does protection wait on the disk? Wall time of ``protect_records`` with a stand-in protector.

The stand-in returns each batch unchanged after ``--busy`` seconds (an accelerator's share of the
work, with no CPU use), so the wall time minus ``batches x busy`` is what reading, decoding, PNG
encoding and manifest writing add on top. With the pipelined batch loop that is close to one
batch's I/O; with a sequential loop it is all of it. Real images: the query and gallery of a
Market-1501-layout dataset (e.g. the CUHK03 crops).

Example (compare two checkouts with PYTHONPATH):
    python tools/benchmark_pipeline.py --root ../shared/data/cuhk03-detected --busy 0 0.5 \
        --json pipeline.json
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time

import torch

import torchreid_pixelfade
from torchreid_pixelfade._torchreid import tr
from torchreid_pixelfade.io import atomic_write_json
from torchreid_pixelfade.protect import Identity
from torchreid_pixelfade.store import ProtectionIdentity, protect_records, records_from_dataset

logger = logging.getLogger("benchmark_pipeline")


class Busy(Identity):
    """The identity protector, taking ``seconds`` per batch without using the CPU."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def _protect(self, images: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        time.sleep(self.seconds)
        return images


def measure(root: str, busy: float, batch_size: int, height: int, width: int) -> dict:
    """Protects the query and gallery of the Market-1501 tree under ``root`` into a temporary
    folder; wall seconds and the part not spent in the stand-in protector."""
    dataset = tr.data.datasets.init_image_dataset("market1501", root=root, mode="query",
                                                  verbose=False)
    source_root, records = records_from_dataset(dataset, ("query", "gallery"))
    identity = ProtectionIdentity(protector="identity", hparams={"busy": busy}, model="none",
                                  weights_sha256="0" * 64, height=height, width=width)
    with tempfile.TemporaryDirectory() as out_dir:
        began = time.perf_counter()
        protect_records(Busy(busy), records, out_dir, identity, source_root,
                        batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - began
    batches = math.ceil(len(records) / batch_size)
    return {"busy_per_batch": busy, "images": len(records), "batches": batches,
            "seconds": seconds, "seconds_beyond_busy": seconds - batches * busy}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder holding market1501/")
    parser.add_argument("--busy", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--json", default="pipeline.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = [measure(args.root, busy, args.batch_size, args.height, args.width)
            for busy in args.busy]
    report = {"package": torchreid_pixelfade.__file__, "threads": torch.get_num_threads(),
              "rows": rows}
    atomic_write_json(args.json, report)
    logger.info("%s", json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
