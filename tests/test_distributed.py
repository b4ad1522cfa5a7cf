"""torchrun protection on CPU with gloo: disjoint shards, per-rank manifest parts, one folder."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch

from torchreid_pixelfade.distributed import DistContext, context_from_env, rank_device, shard
from torchreid_pixelfade.models import build_reid_model

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


@pytest.mark.slow
def test_two_ranks_write_one_folder_equal_to_a_single_process(tiny_market, tmp_path):
    torch.manual_seed(0)
    weights = str(tmp_path / "w.pth")
    torch.save(build_reid_model("osnet_x0_25").state_dict(), weights)
    args = ["protect", "--device", "cpu", "--config-file", CONFIG, "--root", tiny_market,
            "--weights", weights, "--no-progress", "data.height", "64", "data.width", "32",
            "pixelfade.steps", "10", "pixelfade.seed", "0", "pixelfade.batch_size", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", "-m", "torchreid_pixelfade"]
    done = subprocess.run([*torchrun, *args, "--output", str(tmp_path / "two")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    single = subprocess.run([sys.executable, "-m", "torchreid_pixelfade", *args, "--output",
                             str(tmp_path / "one")], capture_output=True, text=True, env=env,
                            timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    two, two_manifest = stored(tmp_path / "two")
    one, one_manifest = stored(tmp_path / "one")
    # every image once, byte-identical: each image's noise and masks come from (seed, its key),
    # and every batch has 4 images in both runs (24 images, 2 ranks x 3 batches vs 6 batches)
    assert len(two) == 24 and two == one
    assert not list((tmp_path / "two").glob("manifest.part-*"))  # parts merged
    assert two_manifest["identity"] == one_manifest["identity"]


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
