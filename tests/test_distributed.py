"""torchrun protection on CPU with gloo: disjoint shards, per-rank manifest parts, one folder."""
import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from torchreid_pixelfade.distributed import DistContext, context_from_env, rank_device, shard
from torchreid_pixelfade.models import build_reid_model
from torchreid_pixelfade.store import ProtectedFolder

from distributed_helpers import alive, complete_lines, kill, wait_until, workers_by_rank

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "osnet_x0_25_128x64.yaml")


def test_context_shards_and_devices():
    assert context_from_env({}) == DistContext(0, 1, 0)
    context = context_from_env({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "1"})
    assert context.distributed and context.rank == 1
    items = list(range(10))
    shards = [shard(items, DistContext(r, 3, r)) for r in range(3)]
    assert sorted(sum(shards, [])) == items and shards[1] == [1, 4, 7]
    assert rank_device(context, "cuda") == torch.device("cuda", 1)
    assert rank_device(context, "cpu") == torch.device("cpu")
    assert rank_device(DistContext(), "cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match="RANK 3"):
        context_from_env({"RANK": "3", "WORLD_SIZE": "2"})


def stored(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    return {key: hashlib.sha256((folder / key).read_bytes()).hexdigest()
            for key in manifest["images"]}, manifest


SHARD_BATCHES = 3  # 24 images, 2 ranks, batches of 4: every rank appends 3 lines
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "torchreid_pixelfade"]


@pytest.fixture(scope="module")
def protect_args(tiny_market, tmp_path_factory):
    """``protect`` arguments, less ``--output``: the tiny Market tree, random OSNet weights, 10
    PixelFade steps with seed 0, batches of 4, eps calibrated."""
    torch.manual_seed(0)
    weights = str(tmp_path_factory.mktemp("weights") / "w.pth")
    torch.save(build_reid_model("osnet_x0_25").state_dict(), weights)
    return ["protect", "--device", "cpu", "--config-file", CONFIG, "--root", tiny_market,
            "--weights", weights, "--no-progress", "data.height", "64", "data.width", "32",
            "pixelfade.steps", "10", "pixelfade.seed", "0", "pixelfade.batch_size", "4",
            # eps calibrated on rank 0 and sent to rank 1; the multiple puts it far above any
            # distance, so that no image depends on the final phase's sub-batches, whose sizes
            # follow the batch's other images (kernels differ by batch size in the last bits)
            "pixelfade.eps_flip_multiple", "1000"]


def protect_in_one_process(args, output):
    return subprocess.run([sys.executable, "-m", "torchreid_pixelfade", *args, "--output",
                           str(output)], capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def single_process_folder(protect_args, tmp_path_factory):
    """The folder a single process protects with ``protect_args`` (the reference)."""
    output = tmp_path_factory.mktemp("single") / "out"
    done = protect_in_one_process(protect_args, output)
    assert done.returncode == 0, done.stderr[-2000:]
    return output


@pytest.mark.slow
def test_two_ranks_write_one_folder_equal_to_a_single_process(protect_args,
                                                              single_process_folder, tmp_path):
    """Two torchrun ranks on CPU (gloo) store every image once, byte-identical to a single
    process with the same seed, under the same manifest identity, and merge their parts."""
    done = subprocess.run([*TORCHRUN, *protect_args, "--output", str(tmp_path / "two")],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    two, two_manifest = stored(tmp_path / "two")
    one, one_manifest = stored(single_process_folder)
    # every image once, byte-identical: each image's noise and masks come from (seed, its key),
    # and every batch has 4 images in both runs (24 images, 2 ranks x 3 batches vs 6 batches)
    assert len(two) == 24 and two == one
    assert not list((tmp_path / "two").glob("manifest.part-*"))  # parts merged
    assert two_manifest["identity"] == one_manifest["identity"]
    assert two_manifest["identity"]["eps_calibration"] == {"flip_multiple": 1000.0, "images": 24}


def test_an_interrupted_multi_rank_run_resumes_in_one_process(tiny_market, tiny_records,
                                                              random_model, tmp_path):
    from torchreid_pixelfade.protect import Blur
    from torchreid_pixelfade.store import ProtectedFolder, protect_records, protection_identity

    root, records = tiny_records
    protector = Blur(random_model)
    identity = protection_identity(protector, random_model, random_model.model, 64, 32, "tiny")
    ranks = [shard(records, DistContext(r, 2, r)) for r in range(2)]
    protect_records(protector, ranks[0], str(tmp_path), identity, root, batch_size=4,
                    progress=False, part=0)  # rank 0 finished, rank 1 was killed before it began
    protect_records(protector, ranks[1][:4], str(tmp_path), identity, root, batch_size=4,
                    progress=False, part=1)  # ... or after its first batch

    class Counting(Blur):
        seen = 0

        def _protect(self, images, reference):
            Counting.seen += len(images)
            return super()._protect(images, reference)

    folder = protect_records(Counting(random_model), records, str(tmp_path), identity, root,
                             batch_size=4, progress=False)
    assert Counting.seen == len(ranks[1]) - 4  # nothing done twice
    assert len(ProtectedFolder.open(tmp_path)) == len(records) == len(folder)


def kill_rank_after_its_first_batch(args, output, log_path, rank=1):
    """Runs ``protect`` under torchrun with 2 ranks and SIGKILLs the worker of ``rank`` once its
    manifest part holds a finished batch, before its last; returns torchrun's exit status after
    every process of the job is gone."""
    part = output / f"manifest.part-{rank}.jsonl"
    with open(log_path, "w") as log:
        launcher = subprocess.Popen([*TORCHRUN, *args, "--output", str(output)], env=ENV,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    workers = {}
    try:
        workers = wait_until(lambda: _two_workers(launcher, log_path), 120, "torchrun's workers")
        batches = wait_until(lambda: complete_lines(part) or launcher.poll() is not None, 300,
                             f"rank {rank}'s first batch")
        assert batches is not True, f"torchrun ended first:\n{log_path.read_text()[-3000:]}"
        assert kill(workers[rank]), f"rank {rank} ended before it was killed"
        assert len(batches) < SHARD_BATCHES, f"rank {rank} had finished before it was killed"
        status = launcher.wait(timeout=120)
        wait_until(lambda: not any(map(alive, workers.values())), 60, "the workers to end")
        return status
    finally:
        for worker in workers.values():
            kill(worker)  # in their own sessions: torchrun's process group does not hold them
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait(timeout=60)


def _two_workers(launcher, log_path):
    """torchrun's ``{rank: worker}`` once both run, else None."""
    workers = workers_by_rank(launcher.pid)
    if len(workers) < 2 and launcher.poll() is not None:
        raise AssertionError(f"torchrun ended without 2 workers:\n{log_path.read_text()[-3000:]}")
    return workers if len(workers) == 2 else None


def file_identity(path):
    """What a rewrite changes: an atomic write replaces the file by a new one (new inode)."""
    status = os.stat(path)
    return status.st_ino, status.st_mtime_ns, status.st_size


@pytest.mark.slow
def test_a_rank_killed_under_torchrun_resumes_in_one_process(protect_args,
                                                             single_process_folder, tmp_path):
    """Kill one of 2 torchrun ranks (SIGKILL) mid-run: torchrun fails and leaves a partial
    folder; a single process then resumes it into the folder a single process writes in one go
    (same PNG bytes, same identity, every image once, parts merged), keeping every image the
    killed run had recorded as it was (same file, same manifest entry) instead of redoing it."""
    output = tmp_path / "killed"
    log_path = tmp_path / "torchrun.log"
    status = kill_rank_after_its_first_batch(protect_args, output, log_path)
    assert status != 0, log_path.read_text()[-3000:]
    recorded = {key: image.to_dict() for key, image in ProtectedFolder.open(output).images.items()}
    assert 0 < len(recorded) < 24  # genuinely partial
    files_before = {key: file_identity(output / key) for key in recorded}

    # whole batches of 4 were recorded, so the resumed run's batches hold 4 images too: the same
    # batch size as the reference, which CPU kernels may need for the last bit
    resumed = protect_in_one_process(protect_args, output)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    images, manifest = stored(output)
    reference, reference_manifest = stored(single_process_folder)
    assert len(images) == 24 and images == reference
    assert sorted(str(p.relative_to(output)) for p in output.rglob("*.png")) == sorted(images)
    assert manifest["identity"] == reference_manifest["identity"]
    assert not list(output.glob("manifest.part-*")) and not list(output.rglob(".tmp-*"))
    assert {key: manifest["images"][key] for key in recorded} == recorded
    assert {key: file_identity(output / key) for key in recorded} == files_before
