"""Scale check on CPU: protect N synthetic images with PixelFade, kill the run, resume, evaluate.

For each ``--num-images`` N, in ``--work-dir/n<N>/``:

1. writes N deterministic 64x32 JPEG images (identity-coloured blocks plus per-image noise; 20
   images per identity over 6 cameras, the first image of each identity in cameras 0 and 1 is a
   query, the rest gallery);
2. protects them with PixelFade (T = ``--steps``, seeded) and a torchreid backbone with random
   weights (``--model``, seed 0) through ``store.protect_records`` in a subprocess, and kills
   that subprocess with SIGKILL once ``--kill-fraction`` of the images are recorded;
3. resumes in a second subprocess to the end;
4. evaluates: features of the stored protected images and of the original queries (read back
   from disk in batches), then ranking (``evaluate_rank``) for P2P and O2P.

While each subprocess runs, this process follows the manifest part file (new bytes only) and the
child's resident memory every ``--poll`` seconds, which gives seconds per 1,000 images across the
run and the memory curve. In the resuming subprocess the manifest work is timed from inside
(part appends, in-memory adds, opening, merging, the resume check). Written to ``--json``: per N
the run times, seconds per 1,000 images in successive windows, peak and sampled RSS, manifest
timings (first and last tenth of the appends, to show they do not grow), evaluation times and
metrics; and, over the N, seconds per image (flat = linear time).

Example (the tiny model: about 36 s per 1,000 images on two busy cores, so N = 20,000 takes
about 15 minutes; ``--model osnet_x0_25`` is about 10 times slower):
    python tools/scale_check.py --work-dir /tmp/scale --num-images 20000 --json scale.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_ranking import PeakRSS  # noqa: E402  (a sibling script)

logger = logging.getLogger("scale_check")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 64, 32
IMAGES_PER_ID, NUM_CAMS, QUERIES_PER_ID = 20, 6, 2
PART = "manifest.part-0.jsonl"
HEAD_BYTES = 512
#: Timings of the manifest work, written by the protection run that finishes.
TIMERS = "timers.json"


# ---------------------------------------------------------------- data


def synthetic_image(index: int, pid: int) -> np.ndarray:
    """A ``(64, 32, 3)`` uint8 image: four horizontal bands coloured by ``pid`` (the same for every
    image of an identity) plus noise drawn from a generator seeded by ``index``."""
    colours = np.random.default_rng(pid).integers(0, 256, size=(4, 3))
    image = np.repeat(colours, HEIGHT // 4, axis=0)[:, None, :].repeat(WIDTH, axis=1)
    noise = np.random.default_rng(10 ** 6 + index).normal(0, 20, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def write_dataset(root: str, num_images: int) -> list[list]:
    """Writes the JPEG images under ``root`` (skipping files already there); the records as
    ``[path, relpath, pid, camid, split]`` lists."""
    from PIL import Image
    records = []
    for index in range(num_images):
        pid, within = divmod(index, IMAGES_PER_ID)
        camid = within % NUM_CAMS
        split = "query" if within < QUERIES_PER_ID else "gallery"
        relpath = os.path.join(split, f"{pid:05d}_c{camid}_{index:07d}.jpg")
        path = os.path.join(root, relpath)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(synthetic_image(index, pid)).save(path + ".tmp.jpg", quality=95)
            os.replace(path + ".tmp.jpg", path)
        records.append([path, relpath, pid, camid, split])
    return records


# ---------------------------------------------------------------- protection (subprocess)


class TinyReID(nn.Module):
    """Two strided convolutions and average pooling: a 32-d feature, about 5 k parameters."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def build_protector(model_name: str, steps: int):
    """``(model, protector, identity)``: ``tiny`` (:class:`TinyReID`) or a torchreid backbone,
    random weights seeded with 0 (the same in every process), PixelFade with ``steps`` and
    otherwise default settings, seed 0."""
    from torchreid_pixelfade.models import AuthorizedModel, build_reid_model
    from torchreid_pixelfade.protect import PixelFade
    from torchreid_pixelfade.store import protection_identity
    torch.manual_seed(0)
    net = TinyReID() if model_name == "tiny" else build_reid_model(model_name)
    model = AuthorizedModel(net, name=model_name).eval()
    protector = PixelFade(model, steps=steps, seed=0)
    identity = protection_identity(protector, model, net, HEIGHT, WIDTH, "synthetic-scale")
    return model, protector, identity


class Timers:
    """Wall time of wrapped functions: ``{name: [seconds of each call]}``."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}

    def wrap(self, owner, name: str, label: str) -> None:
        """Replaces ``owner.name`` by a timed version recorded under ``label``."""
        function = getattr(owner, name)
        calls = self.calls.setdefault(label, [])

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                calls.append(time.perf_counter() - began)

        setattr(owner, name, timed)


def protect_worker(work: str, model_name: str, steps: int, batch_size: int, threads: int
                   ) -> None:
    """Runs (or resumes) the protection of ``work``'s records; writes :data:`TIMERS`."""
    from torchreid_pixelfade.store import ImageRecord, folder, protect_records, writer
    torch.set_num_threads(threads)
    with open(os.path.join(work, "records.json")) as handle:
        records = [ImageRecord(*item) for item in json.load(handle)]
    _, protector, identity = build_protector(model_name, steps)
    timers = Timers()
    timers.wrap(writer, "_append", "part_append")
    timers.wrap(writer, "_merge", "merge")
    timers.wrap(writer, "pending", "resume_check")
    timers.wrap(folder.ProtectedFolder, "open", "open")
    timers.wrap(folder.ProtectedFolder, "add", "add")
    began = time.perf_counter()
    protect_records(protector, records, os.path.join(work, "protected"), identity,
                    os.path.join(work, "data"), batch_size=batch_size, progress=False)
    summary = {"seconds": time.perf_counter() - began, "calls": timers.calls}
    with open(os.path.join(work, TIMERS), "w") as handle:  # only a finished run writes it
        json.dump(summary, handle)


# ---------------------------------------------------------------- following a run


class Follower:
    """Follows a protection run from outside: lines of its manifest part and its RSS.

    A resuming run first merges the part an interrupted run left and starts a new one; until
    then the part still begins with the old run's first line, and counts as nothing new.
    """

    def __init__(self, out_dir: str, batch_size: int, done_before: int) -> None:
        self.path, self.batch_size, self.done_before = os.path.join(out_dir, PART), batch_size, \
            done_before
        self.stale_head = self._read()[:HEAD_BYTES] or None
        self.most = done_before  # the part is merged away when the run ends
        self.began = time.perf_counter()
        self.samples: list[tuple[float, int, float]] = []  # (seconds, images, rss MB)

    def _read(self) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return b""

    def images(self) -> int:
        """Images recorded so far (whole batches; the last batch may count a few too many)."""
        data = self._read()
        if self.stale_head is None or data[:HEAD_BYTES] != self.stale_head:
            self.most = max(self.most, self.done_before + data.count(b"\n") * self.batch_size)
        return self.most

    def sample(self, pid: int) -> int:
        done = self.images()
        self.samples.append((time.perf_counter() - self.began, done, rss_mb(pid)))
        return done


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_protection(work: str, args: argparse.Namespace, kill_at: int | None,
                   done_before: int) -> dict:
    """One protection subprocess, followed; killed with SIGKILL at ``kill_at`` images."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", work, "--model",
               args.model, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(os.path.join(work, "worker.log"), "a")
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    follower = Follower(os.path.join(work, "protected"), args.batch_size, done_before)
    killed = False
    while child.poll() is None:
        if kill_at is not None and follower.sample(child.pid) >= kill_at:
            os.kill(child.pid, signal.SIGKILL)
            killed = True
            break
        if kill_at is None:
            follower.sample(child.pid)
        time.sleep(args.poll)
    returncode = child.wait()
    log.close()
    if not killed and returncode:
        raise RuntimeError(f"scale_check: the protection run failed (exit {returncode}); see "
                           f"{os.path.join(work, 'worker.log')}")
    return {"killed": killed, "returncode": returncode,
            "seconds": time.perf_counter() - follower.began, "samples": follower.samples}


def per_window(samples: list, window: int) -> list[dict]:
    """Seconds per 1,000 images in each whole window of ``window`` images of a followed run
    (interpolated between samples); ``[{'from': first image, 'seconds_per_1000': ...}]``."""
    done = [n for _, n, _ in samples]
    times = [t for t, _, _ in samples]
    if len(done) < 2 or done[-1] <= done[0]:
        return []
    rows = []
    for low in range(done[0], done[-1] - window + 1, window):
        seconds = np.interp(low + window, done, times) - np.interp(low, done, times)
        rows.append({"from": low, "seconds_per_1000": 1000 * float(seconds) / window})
    return rows


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def stream_features(model, paths: list[str], batch_size: int) -> torch.Tensor:
    """``(N, D)`` features of images read from disk ``batch_size`` at a time."""
    from torchreid_pixelfade.io import load_images
    return torch.cat([model(load_images(paths[i:i + batch_size], HEIGHT, WIDTH))
                      for i in range(0, len(paths), batch_size)])


def evaluate(work: str, args: argparse.Namespace) -> dict:
    """P2P and O2P ranking of the finished folder; times of features and of ranking."""
    from torchreid_pixelfade.metrics import compute_distances, evaluate_rank
    from torchreid_pixelfade.store import ProtectedFolder
    torch.set_num_threads(args.threads)
    model, _, _ = build_protector(args.model, args.steps)
    folder = ProtectedFolder.open(os.path.join(work, "protected"))
    began = time.perf_counter()
    query_p, query_o = folder.pairs("query")
    gallery_p = folder.pairs("gallery")[0]
    features = {"query_protected": stream_features(model, query_p, 256),
                "query_original": stream_features(model, query_o, 256),
                "gallery_protected": stream_features(model, gallery_p, 256)}
    feature_seconds = time.perf_counter() - began
    q_labels, g_labels = folder.labels("query"), folder.labels("gallery")
    results, rank_seconds = {}, 0.0
    for name, query in (("P2P", "query_protected"), ("O2P", "query_original")):
        distmat = compute_distances(features[query], features["gallery_protected"])
        began = time.perf_counter()
        result = evaluate_rank(distmat, q_labels[0], g_labels[0], q_labels[1], g_labels[1])
        rank_seconds += time.perf_counter() - began
        results[name] = result.to_dict()
    return {"num_query": len(query_p), "num_gallery": len(gallery_p),
            "feature_seconds": feature_seconds, "ranking_seconds": rank_seconds,
            "metrics": results}


# ---------------------------------------------------------------- one N


def manifest_summary(work: str) -> dict:
    """Manifest timings of the resumed run (the one that finished)."""
    with open(os.path.join(work, TIMERS)) as handle:
        timers = json.load(handle)
    calls = timers["calls"]
    appends = calls.get("part_append", [])
    tenth = max(1, len(appends) // 10)
    return {"seconds_resumed_run": timers["seconds"],
            "total_seconds": {name: float(sum(v)) for name, v in calls.items()},
            "calls": {name: len(v) for name, v in calls.items()},
            "append_ms_first_tenth": 1000 * float(np.mean(appends[:tenth])) if appends else None,
            "append_ms_last_tenth": 1000 * float(np.mean(appends[-tenth:])) if appends else None,
            "merge_seconds": calls.get("merge", [])}


def check_one(num_images: int, args: argparse.Namespace) -> dict:
    """The whole check for ``num_images``; its report."""
    work = os.path.join(os.path.abspath(args.work_dir), f"n{num_images}")
    os.makedirs(work, exist_ok=True)
    began = time.perf_counter()
    records = write_dataset(os.path.join(work, "data"), num_images)
    with open(os.path.join(work, "records.json"), "w") as handle:
        json.dump(records, handle)
    data_seconds = time.perf_counter() - began
    kill_at = int(args.kill_fraction * num_images)
    first = run_protection(work, args, kill_at, 0)
    from torchreid_pixelfade.store import ProtectedFolder
    kept = len(ProtectedFolder.open(os.path.join(work, "protected")))
    resumed = run_protection(work, args, None, kept)
    final = len(ProtectedFolder.open(os.path.join(work, "protected")))
    if final != num_images:
        raise RuntimeError(f"scale_check: {final} of {num_images} images stored after resuming")
    protect_seconds = first["seconds"] + resumed["seconds"]
    report = {"num_images": num_images, "data_seconds": data_seconds,
              "killed_at_images": kept, "killed": first["killed"],
              "first_run_seconds": first["seconds"], "resumed_run_seconds": resumed["seconds"],
              "protect_seconds": protect_seconds,
              "seconds_per_1000_images": 1000 * protect_seconds / num_images,
              "seconds_per_1000_by_window": {
                  "window": args.window, "first_run": per_window(first["samples"], args.window),
                  "resumed_run": per_window(resumed["samples"], args.window)},
              "peak_rss_mb": max(s[2] for s in first["samples"] + resumed["samples"]),
              "rss_mb_by_tenth_resumed": rss_by_tenth(resumed["samples"]),
              "manifest": manifest_summary(work)}
    with PeakRSS() as peak:
        report["evaluation"] = evaluate(work, args)
    report["evaluation"]["peak_extra_mb"] = peak.extra_mb
    logger.info("N=%d: %.1f s protecting (%.1f s per 1,000), killed at %d, peak RSS %.0f MB",
                num_images, protect_seconds, report["seconds_per_1000_images"], kept,
                report["peak_rss_mb"])
    return report


def rss_by_tenth(samples: list) -> list[float]:
    """Resident memory (MB) at each tenth of a followed run."""
    live = [s for s in samples if s[2] > 0]
    if not live:
        return []
    return [live[min(len(live) - 1, int(k * len(live) / 10))][2] for k in range(10)]


def linearity(reports: list[dict]) -> dict:
    """Seconds per 1,000 images and manifest seconds per image for each N (flat = linear)."""
    return {str(r["num_images"]): {
        "protect_seconds_per_1000": r["seconds_per_1000_images"],
        "manifest_ms_per_image": 1000 * sum(r["manifest"]["total_seconds"].get(k, 0.0)
                                            for k in ("part_append", "add", "merge", "open"))
        / r["num_images"]} for r in reports}


def is_inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both resolved)."""
    return os.path.commonpath([path, folder]) == folder


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", help="folder for images and protected folders (outside "
                        "the repository)")
    parser.add_argument("--num-images", type=int, nargs="+", default=[20_000])
    parser.add_argument("--kill-fraction", type=float, default=0.5,
                        help="SIGKILL the first run once this fraction is recorded")
    parser.add_argument("--model", default="tiny",
                        help="'tiny' (a 5 k-parameter CNN) or a torchreid model name")
    parser.add_argument("--steps", type=int, default=2, help="T")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--window", type=int, default=1000,
                        help="images per window of the time-per-1,000 curve")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.worker and not args.work_dir:
        parser.error("--work-dir is required")
    if args.work_dir and is_inside(os.path.realpath(args.work_dir), os.path.realpath(REPO)):
        parser.error(f"--work-dir {args.work_dir} lies inside the repository {REPO}; choose a "
                     "folder outside it (the check writes tens of thousands of files)")
    if not 0 < args.kill_fraction < 1:
        parser.error("--kill-fraction must be in (0, 1)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        protect_worker(args.worker, args.model, args.steps, args.batch_size, args.threads)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reports = [check_one(n, args) for n in args.num_images]
    summary = {"height": HEIGHT, "width": WIDTH, "model": args.model, "steps": args.steps,
               "batch_size": args.batch_size, "threads": args.threads,
               "cpu_count": os.cpu_count(), "platform": platform.platform(),
               "torch": torch.__version__, "runs": reports, "linearity": linearity(reports)}
    if args.json:
        from torchreid_pixelfade.io import atomic_write_json
        atomic_write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
