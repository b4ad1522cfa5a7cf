"""Peak memory of the recovery attack, training and attacking, as the number of pairs grows.

Builds a synthetic Market-1501 (``torchreid_pixelfade.data.synthetic``) with ``4 x --pairs``
training images at ``--height x --width``, protects its first ``--pairs`` and then all its training
images with the ``blur`` protector into two protected folders (``store.protect_records``), and
runs each mode on each folder, every run in a fresh subprocess (the two training modes train the
recovery U-Net for one epoch):

* ``stream``: :class:`~torchreid_pixelfade.attack.PairDataset` read batch by batch (the attack's
  way), memory should not depend on the number of pairs;
* ``memory``: all pairs loaded as float tensors first (``load_pairs`` + ``train_recovery``, the
  former way), memory grows by ``2 x 3 x H x W x 4`` bytes per pair;
* ``victims``: the pairs attacked and scored as ``run_attack`` does it (an untrained U-Net of
  ``--unet-width`` on the CPU, a grey prior), ``--victim-chunk`` at a time: memory should not
  depend on the number of victims once there are two chunks or more (one chunk never reads a
  block of other originals), so measure with ``--pairs`` at least twice the chunk;
* ``victims-at-once``: the former way, all victims loaded, recovered and scored as tensors
  (``load_pairs``, ``recover``, ``recovery_metrics`` three times).

Reported per run: ``peak_extra_mb`` (peak RSS above the level after imports, see
``benchmark_ranking.PeakRSS``), seconds, and ``growth_mb`` (4N run minus N run, per mode). The JSON
also gives what holding Market-1501's 12,936 training pairs at the same size as float tensors
would take.

Examples (U-Net width 64, batch 16, two threads; the training modes took about 16 and 8 minutes
on two busy cores):
    python tools/benchmark_attack_memory.py --work-dir /tmp/attack-mem --pairs 512 \
        --json attack_memory.json
    python tools/benchmark_attack_memory.py --work-dir /tmp/attack-mem-256 --pairs 32 \
        --height 256 --width 128 --json attack_memory_256x128.json
    python tools/benchmark_attack_memory.py --work-dir /tmp/attack-mem-victims --pairs 640 \
        --height 128 --width 64 --modes victims --victim-chunk 160 --json victims.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_ranking import PeakRSS  # noqa: E402  (a sibling script)

logger = logging.getLogger("benchmark_attack_memory")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKET_TRAIN_IMAGES = 12_936
MODES = ("stream", "memory", "victims", "victims-at-once")


def build_folders(work_dir: str, pairs: int, height: int, width: int) -> dict[int, str]:
    """Protected folders (blur) of the first ``pairs`` and of ``4 x pairs`` synthetic training
    images; ``{number of pairs: folder}``. Reuses folders already complete (resumable)."""
    from torchreid_pixelfade._torchreid import tr
    from torchreid_pixelfade.data.synthetic import SyntheticConfig, make_synthetic_market1501
    from torchreid_pixelfade.protect import Blur
    from torchreid_pixelfade.store import (ProtectionIdentity, protect_records,
                                           records_from_dataset)

    cameras, per_camera = 2, 4
    ids = -(-4 * pairs // (cameras * per_camera))
    root = os.path.join(work_dir, "data")
    make_synthetic_market1501(root, SyntheticConfig(
        num_train_ids=ids, num_test_ids=2, images_per_id_per_camera=per_camera,
        num_cameras=cameras, height=height, width=width))
    dataset = tr.data.datasets.init_image_dataset("market1501", root=root, mode="train",
                                                  verbose=False)
    source_root, records = records_from_dataset(dataset, ("train",))
    protector = Blur(sigma=2.0)
    identity = ProtectionIdentity(protector=protector.name, hparams=protector.hparams(),
                                  model="none", weights_sha256="0" * 64, height=height,
                                  width=width, dataset="synthetic")
    folders = {}
    for count in (pairs, 4 * pairs):
        folders[count] = os.path.join(work_dir, f"protected-{count}")
        protect_records(protector, records[:count], folders[count], identity, source_root,
                        batch_size=64, progress=False)
    return folders


def attack_once(folder: str, mode: str, args: argparse.Namespace) -> int:
    """Attacks and scores the victims of ``folder`` with an untrained U-Net and a grey prior,
    streamed (``victims``) or all at once (``victims-at-once``); returns their number."""
    from torchreid_pixelfade.attack import (PairDataset, UNet, load_pairs, recover,
                                            recovery_metrics)
    from torchreid_pixelfade.attack.recovery import _attack_victims
    from torchreid_pixelfade.attack.unet import max_depth

    victims = PairDataset.from_folder(folder)
    net = UNet(width=args.unet_width, depth=max_depth(victims.height, victims.width)).eval()
    prior = torch.full((3, victims.height, victims.width), 0.5)
    if mode == "victims":
        _attack_victims(net, victims, prior, args.victim_chunk)
        return len(victims)
    protected, originals = load_pairs(folder)
    for images in (recover(net, protected), protected, prior.expand_as(originals).contiguous()):
        recovery_metrics(images, originals)
    return len(protected)


def train_once(folder: str, mode: str, args: argparse.Namespace) -> dict:
    """Runs ``mode`` on ``folder`` in this process (training: one epoch); seconds and peak
    extra memory."""
    from torchreid_pixelfade.attack import (PairDataset, load_pairs, train_recovery,
                                            train_recovery_on_pairs)
    torch.set_num_threads(args.threads)
    settings = {"width": args.unet_width, "epochs": 1, "batch_size": args.batch_size,
                "seed": 0, "device": args.device, "progress": False}
    began = time.perf_counter()
    with PeakRSS() as peak:
        if mode.startswith("victims"):
            count = attack_once(folder, mode, args)
        elif mode == "stream":
            pairs = PairDataset.from_folder(folder)
            count = len(pairs)
            train_recovery_on_pairs(pairs, num_workers=args.num_workers, **settings)
        else:
            protected, originals = load_pairs(folder)
            count = len(protected)
            train_recovery(protected, originals, **settings)
    return {"mode": mode, "pairs": count, "seconds": time.perf_counter() - began,
            "peak_extra_mb": peak.extra_mb, "peak_method": peak.method}


def spawn(folder: str, mode: str, argv: list[str]) -> dict:
    """:func:`train_once` in a fresh Python process."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", folder, "--mode", mode]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command + argv, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"benchmark_attack_memory: {mode} run on {folder} failed:\n"
                           f"{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def growth(rows: list[dict]) -> dict:
    """``{mode: peak MB of the largest run minus the smallest}`` and per added pair, in KiB."""
    out = {}
    for mode in dict.fromkeys(row["mode"] for row in rows):
        runs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["pairs"])
        mb = runs[-1]["peak_extra_mb"] - runs[0]["peak_extra_mb"]
        out[mode] = {"growth_mb": mb,
                     "kib_per_pair": 1024 * mb / max(runs[-1]["pairs"] - runs[0]["pairs"], 1)}
    return out


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", required=False, default=None,
                        help="where the synthetic data and protected folders go")
    parser.add_argument("--pairs", type=int, default=512, help="N; also run with 4 x N")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--unet-width", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--victim-chunk", type=int, default=640,
                        help="victims per chunk of the 'victims' mode (run_attack's default)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, default="stream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.worker and not args.work_dir:
        parser.error("--work-dir is required")
    if not args.worker and args.pairs < 2 * args.batch_size:
        # Adam allocates its two state tensors per parameter at the first step, so a run of one
        # step peaks lower than any longer run whatever the number of pairs
        parser.error(f"--pairs must be at least 2 x --batch-size ({2 * args.batch_size}) so "
                     "that every run takes two optimiser steps or more")
    shared = ["--unet-width", str(args.unet_width), "--batch-size", str(args.batch_size),
              "--num-workers", str(args.num_workers), "--threads", str(args.threads),
              "--device", args.device, "--victim-chunk", str(args.victim_chunk)]
    return args, shared


def main(argv=None) -> int:
    args, shared = parse_args(argv)
    if args.worker:
        print(json.dumps(train_once(args.worker, args.mode, args)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folders = build_folders(args.work_dir, args.pairs, args.height, args.width)
    rows = []
    for mode in args.modes:
        for count, folder in folders.items():
            rows.append(spawn(folder, mode, shared))
            logger.info("%s, %d pairs: peak +%.0f MB, %.1f s", mode, count,
                        rows[-1]["peak_extra_mb"], rows[-1]["seconds"])
    pair_bytes = 2 * 3 * args.height * args.width * 4
    report = {"height": args.height, "width": args.width, "unet_width": args.unet_width,
              "batch_size": args.batch_size, "threads": args.threads, "device": args.device,
              "victim_chunk": args.victim_chunk,
              "num_workers": args.num_workers, "platform": platform.platform(),
              "torch": torch.__version__, "results": rows, "growth": growth(rows),
              "float_pairs_mb_per_pair": pair_bytes / 2 ** 20,
              "market_train_as_float_pairs_gb": MARKET_TRAIN_IMAGES * pair_bytes / 2 ** 30}
    if args.json:
        from torchreid_pixelfade.io import atomic_write_json
        atomic_write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
