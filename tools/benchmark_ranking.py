"""Wall time and peak extra memory of ``evaluate_rank`` at Market-1501 scale.

Each variant runs in a fresh subprocess (so one variant's allocations cannot hide another's
peak). The subprocess builds the problem first: random features of ``--num-ids`` identities
(an identity centre plus noise, so the ranking has realistic matches), ``--num-cams`` cameras, and
their squared Euclidean distance matrix ``(Q, G)`` in float32. It then resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``; where that is refused, the ``getrusage`` peak before
the call is the baseline) and times ``evaluate_rank`` ``--repeats`` times. Reported:

* ``seconds``: the fastest wall time of the repeats, and ``seconds_all``;
* ``peak_extra_mb``: peak resident memory during the calls minus the resident memory with the
  inputs built (:class:`PeakRSS`; the distance matrix alone is ``Q x G x 4`` bytes);
* the metrics, and whether they are identical to the first variant's.

Variants: ``current`` (the installed :func:`torchreid_pixelfade.metrics.evaluate_rank`),
``git:REV`` (``torchreid_pixelfade/metrics/rank.py`` as of git revision ``REV``, read with
``git show``; to compare with an earlier version), and either of them with ``@chunk=N`` appended
(a fixed chunk of query rows instead of the default).

Example (Market-1501's query x gallery, two threads):
    python tools/benchmark_ranking.py --threads 2 --variants git:HEAD current \
        --json ranking.json
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

logger = logging.getLogger("benchmark_ranking")

RANK_PATH = "torchreid_pixelfade/metrics/rank.py"
#: Feature noise (per dimension, identity centres are N(0, 1)): at Market scale mAP
#: about 0.6, rank-1 about 0.95, like a good model.
NOISE = 2.2
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_problem(num_q: int, num_g: int, num_ids: int, num_cams: int, dim: int = 512,
                 noise: float = NOISE, seed: int = 0) -> tuple:
    """A re-id problem with Market-like labels.

    Returns:
        ``(distmat, q_pids, g_pids, q_camids, g_camids)``: ``(Q, G)`` float32 squared Euclidean
        distances between features ``centre[pid] + noise`` (values >= 0), int64 pids in
        ``[0, num_ids)`` (every query id also in the gallery) and camids in ``[0, num_cams)``.
    """
    from torchreid_pixelfade.metrics import compute_distances
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=generator)
    g_pids = torch.arange(num_g) % num_ids
    q_pids = torch.arange(num_q) % num_ids
    g_camids = torch.randint(0, num_cams, (num_g,), generator=generator)
    q_camids = torch.randint(0, num_cams, (num_q,), generator=generator)
    qf = centres[q_pids] + noise * torch.randn(num_q, dim, generator=generator)
    gf = centres[g_pids] + noise * torch.randn(num_g, dim, generator=generator)
    distmat = compute_distances(qf, gf)
    return (distmat, q_pids.numpy(), g_pids.numpy(), q_camids.numpy(), g_camids.numpy())


def load_rank_module(variant: str):
    """The ``rank`` module of a variant name (``current`` or ``git:REV``)."""
    if variant == "current":
        from torchreid_pixelfade.metrics import rank
        return rank
    if not variant.startswith("git:"):
        raise ValueError(f"variant {variant!r}: expected 'current' or 'git:REV'")
    source = subprocess.run(["git", "-C", REPO, "show", f"{variant[4:]}:{RANK_PATH}"],
                            check=True, capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("rank_" + variant[4:].replace("~", "_"),
                                                  handle.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    os.unlink(handle.name)
    return module


def _status_kb(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of ``/proc/self/status`` in kB (None off Linux)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRSS:
    """Peak resident memory of this process above the level at entry (a context manager).

    On entry, freed heap pages are returned to the OS (``malloc_trim``) and the kernel's peak-RSS
    counter is reset to the current RSS (``/proc/self/clear_refs``), so memory freed earlier
    cannot hide a peak. Where that reset is refused, the baseline is the ``getrusage`` peak so
    far (``method`` says which). ``tracemalloc`` would miss torch's allocations.

    Attributes:
        extra_mb: peak RSS during the block minus RSS at entry, in MiB (>= 0 up to noise).
        method: how the peak was measured.
    """

    def __enter__(self) -> "PeakRSS":
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.reset = _reset_peak()
        self.method = "VmHWM after clear_refs" if self.reset else "ru_maxrss delta"
        self._base_kb = _status_kb("VmRSS") if self.reset else _peak_kb()
        self.extra_mb = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.extra_mb = (_peak_kb() - self._base_kb) / 1024


def _reset_peak() -> bool:
    """Resets the kernel's peak-RSS counter to the current RSS; whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_kb() -> int:
    peak = _status_kb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Builds the problem, then times and measures one variant (call in a fresh process)."""
    torch.set_num_threads(args.threads)
    name, _, chunk = variant.partition("@chunk=")
    module = load_rank_module(name)
    problem = make_problem(args.num_query, args.num_gallery, args.num_ids, args.num_cams,
                           seed=args.seed)
    kwargs = {"chunk_size": int(chunk)} if chunk else {}
    times = []
    with PeakRSS() as peak:
        for _ in range(args.repeats):
            began = time.perf_counter()
            result = module.evaluate_rank(*problem, max_rank=50, **kwargs)
            times.append(time.perf_counter() - began)
    return {"variant": variant, "seconds": min(times), "seconds_all": times,
            "peak_extra_mb": peak.extra_mb, "peak_method": peak.method,
            "distmat_mb": problem[0].nbytes / 2 ** 20,
            "cmc": result.cmc.tolist(), "mAP": result.mAP, "mINP": result.mINP,
            "num_valid_queries": result.num_valid_queries}


def spawn(variant: str, argv: list[str]) -> dict:
    """Runs one variant in a fresh Python process; its result."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", variant] + argv
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"benchmark_ranking: variant {variant!r} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(rows: list[dict]) -> None:
    """Marks each row with whether its metrics equal the first row's exactly."""
    first = rows[0]
    for row in rows:
        row["identical_to_first"] = (row["cmc"] == first["cmc"] and row["mAP"] == first["mAP"]
                                     and row["mINP"] == first["mINP"])


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["current"])
    parser.add_argument("--num-query", type=int, default=3368)
    parser.add_argument("--num-gallery", type=int, default=15913)
    parser.add_argument("--num-ids", type=int, default=751)
    parser.add_argument("--num-cams", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shared = ["--num-query", str(args.num_query), "--num-gallery", str(args.num_gallery),
              "--num-ids", str(args.num_ids), "--num-cams", str(args.num_cams),
              "--threads", str(args.threads), "--repeats", str(args.repeats),
              "--seed", str(args.seed)]
    return args, shared


def main(argv=None) -> int:
    args, shared = parse_args(argv)
    if args.worker:
        print(json.dumps(run_variant(args.worker, args)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for variant in args.variants:
        rows.append(spawn(variant, shared))
        logger.info("%s: %.2f s (best of %d), peak +%.0f MB", variant, rows[-1]["seconds"],
                    args.repeats, rows[-1]["peak_extra_mb"])
    compare(rows)
    report = {"shape": [args.num_query, args.num_gallery], "num_ids": args.num_ids,
              "num_cams": args.num_cams, "threads": args.threads,
              "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "numpy": np.__version__, "torch": torch.__version__, "results": rows}
    if args.json:
        from torchreid_pixelfade.io import atomic_write_json
        atomic_write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
