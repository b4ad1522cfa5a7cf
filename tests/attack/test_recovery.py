"""Recovery attack: U-Net shapes, learning a toy inverse, metrics, run_attack and the CLI,
training on pairs streamed from a protected folder, and victims attacked and scored in chunks."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from torch.utils.data import TensorDataset

from torchreid_pixelfade.attack import (EpochOrder, PairDataset, UNet, attacker_prior,
                                        load_attacker, load_pairs, matching_scores, max_depth,
                                        pairs_from_protected, recover, recovery_metrics,
                                        run_attack, train_recovery, train_recovery_on_pairs)
from torchreid_pixelfade.attack.recovery import _grid_index
from torchreid_pixelfade.cli import main
from torchreid_pixelfade.io import ImageReadError, write_image_grid, write_png
from torchreid_pixelfade.protect import Blur, Mosaic
from torchreid_pixelfade.store import ImageRecord, ProtectionIdentity, protect_records

KEYS = {"metrics", "num_train_pairs", "num_victims", "epochs", "width", "depth", "attacker",
        "victim", "protected_vs_original", "prior"}
TINY = {"width": 4, "depth": 5, "epochs": 2, "batch_size": 4, "seed": 0}


def smooth_images(count, height, width, seed):
    """Smooth random pixel images: low-resolution noise upsampled bilinearly, (N, 3, H, W)."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, height // 8, width // 8, generator=generator)
    return F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)


def colour_transform(images):
    """An invertible toy protection: channel permutation and 1 - x."""
    return 1 - images[:, [2, 0, 1]]


@pytest.mark.parametrize("height, width, depth", [(64, 32, 5), (128, 64, 6)])
def test_unet_shape_and_range(height, width, depth):
    torch.manual_seed(0)
    net = UNet(width=4, depth=depth)
    out = net(torch.rand(2, 3, height, width))
    assert out.shape == (2, 3, height, width)
    assert out.min() >= 0 and out.max() <= 1


def test_unet_rejects_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="64x32"):
        UNet(width=4, depth=6)(torch.rand(1, 3, 64, 32))
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)
    assert max_depth(64, 32) == 5 and max_depth(256, 128) == 7 and max_depth(48, 32) == 4


def test_unet_128_matches_pix2pix_size():
    """width 64, depth 7 is pix2pix's unet_128 (41.83 M parameters)."""
    net = UNet()
    assert sum(p.numel() for p in net.parameters()) == 41_828_995


def test_training_is_seeded_and_leaves_the_global_rng_alone():
    images = smooth_images(4, 32, 16, seed=0)
    state = torch.get_rng_state()
    first = train_recovery(colour_transform(images), images, width=4, epochs=1, batch_size=2,
                           progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    second = train_recovery(colour_transform(images), images, width=4, epochs=1, batch_size=2,
                            progress=False)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def attack_toy(protect):
    """Trains on 32 toy 32x16 pairs (10 epochs = 40 steps) and attacks 8 held-out ones.

    Returns the recovery metrics and the protected-vs-original pixel scores (the baseline).
    """
    train, test = smooth_images(32, 32, 16, seed=0), smooth_images(8, 32, 16, seed=1)
    net = train_recovery(protect(train, 2), train, width=8, depth=4, epochs=10, batch_size=8,
                         lr=1e-2, progress=False)
    protected = protect(test, 3)
    recovered = recover(net, protected)
    assert recovered.shape == test.shape
    return recovery_metrics(recovered, test), recovery_metrics(protected, test)["pixel"]


def test_attack_inverts_an_invertible_protection_but_not_noise():
    """A learnable inverse is found; pure noise (no information about the image) is not inverted.

    Margins measured over 12 seeds (data, noise and training seed varied together; about 1 s per
    training on one thread): colour transform 25.4-29.2 dB, SSIM 0.93-0.96, rank-1 always 1,
    at least 15.3 dB above its protected-vs-original baseline (9.3-10.9 dB); noise 11.1-12.3 dB,
    SSIM 0.04-0.18, at least 13.5 dB below the colour transform.
    """
    scores, baseline = attack_toy(lambda images, seed: colour_transform(images))
    inverted = scores["pixel"]
    # seed 0: 28.4 dB / SSIM 0.96 (protected vs original: 10.6 dB)
    assert inverted["psnr"] > 22 and inverted["ssim"] > 0.85
    assert inverted["psnr"] > baseline["psnr"] + 12
    assert scores["matching"]["rank1"] == 1.0
    noise = attack_toy(lambda images, seed: torch.rand(
        images.shape, generator=torch.Generator().manual_seed(seed)))[0]["pixel"]
    # seed 0: 11.6 dB / SSIM 0.13
    assert noise["psnr"] < 14 and noise["psnr"] < inverted["psnr"] - 10
    assert noise["ssim"] < 0.3


def test_recovery_metrics_official_and_pixel():
    images = smooth_images(3, 64, 32, seed=0)
    same = recovery_metrics(images, images)
    assert same["pixel"]["ssim"] == pytest.approx(1)
    assert same["official"]["ssim"] == pytest.approx(1)
    assert same["pixel"]["psnr"] == 100
    # a contrast-reduced copy: poor in pixel space, much better after the official min-max
    # rescaling (not perfect: the per-channel ImageNet std makes it differ per channel)
    # measured: 19.9 dB pixel vs 30.5 dB official
    dim = 0.25 + 0.5 * images
    scores = recovery_metrics(dim, images, batch_size=3)
    assert scores["official"]["psnr"] > scores["pixel"]["psnr"] + 8
    assert scores["official"]["ssim"] > scores["pixel"]["ssim"]
    with pytest.raises(ValueError, match="same shape"):
        recovery_metrics(images, images[:2])


def test_matching_scores_tell_own_original_from_others():
    images = smooth_images(6, 64, 32, seed=0)
    perfect = {"rank1": 1.0, "rank1_chance": 1 / 6, "mean_rank_percentile": 0.0}
    assert matching_scores(images, images) == perfect
    assert matching_scores(0.8 * images + 0.1, images) == perfect  # a faded copy still matches
    # a recovery of everyone's neighbour: own original never nearest
    assert matching_scores(images.roll(1, dims=0), images)["rank1"] == 0.0
    # one image for every victim (an attacker who learnt nothing): chance on both scores
    blind = matching_scores(images.mean(0, keepdim=True).expand_as(images), images)
    assert blind["rank1"] == 1 / 6 and blind["mean_rank_percentile"] == pytest.approx(0.5)
    shifted = images.roll(1, dims=0) * 0.5 + images * 0.5
    assert matching_scores(shifted, images, chunk=4) == matching_scores(shifted, images)
    with pytest.raises(ValueError, match="same shape"):
        matching_scores(images, images[:2])
    with pytest.raises(ValueError, match="at least 2"):
        matching_scores(images[:1], images[:1])


def copy_records(records, folder):
    """Copies images to another dataset root (a cross-dataset victim set)."""
    os.makedirs(folder)
    copies = []
    for record in records:
        name = os.path.basename(record.path)
        shutil.copy(record.path, os.path.join(folder, name))
        copies.append(ImageRecord(os.path.join(folder, name), name, record.pid, record.camid,
                                  record.split))
    return copies


def protect_folder(protector, records, root, out):
    identity = ProtectionIdentity(protector=protector.name, hparams=protector.hparams(),
                                  model="none", weights_sha256="0" * 64, height=64, width=32)
    protect_records(protector, records, str(out), identity, root, batch_size=8, progress=False)
    return str(out)


@pytest.fixture(scope="module")
def folders(tiny_records, tmp_path_factory):
    """(attacker, victim) protect folders: mosaic of half the tiny Market images, and blur of
    copies of the other half under another source root."""
    root, records = tiny_records
    base = tmp_path_factory.mktemp("attack")
    attacker = protect_folder(Mosaic(cell=4), records[::2], root, base / "attacker")
    victim_root = str(base / "other-dataset")
    victims = copy_records(records[1::2][:6], victim_root)
    return attacker, protect_folder(Blur(sigma=1.5), victims, victim_root, base / "victim")


def test_pairs_and_load_pairs(folders, tiny_records):
    attacker, victim = folders
    protected_paths, original_paths = pairs_from_protected(victim)
    assert len(protected_paths) == len(original_paths) == 6
    assert all(path.endswith(".png") and os.path.exists(path) for path in protected_paths)
    assert all("other-dataset" in path for path in original_paths)
    protected, originals = load_pairs(attacker)
    assert protected.shape == originals.shape == (len(tiny_records[1][::2]), 3, 64, 32)
    assert 0 <= protected.min() and protected.max() <= 1
    assert load_pairs(victim, 32, 16)[0].shape == (6, 3, 32, 16)


def test_run_attack_writes_results_and_reuses_weights(folders, tmp_path):
    attacker, victim = folders
    result = run_attack(attacker, victim, str(tmp_path), progress=False, **TINY)
    on_disk = json.loads((tmp_path / "attack.json").read_text())
    assert KEYS <= set(on_disk) and on_disk == json.loads(json.dumps(result))
    assert on_disk["num_victims"] == 6 and on_disk["depth"] == 5 and on_disk["epochs"] == 2
    assert set(on_disk["metrics"]) == {"pixel", "official", "matching"}
    assert set(on_disk["metrics"]["pixel"]) == {"psnr", "ssim"}
    # the prior is the attacker's mean original, the same for every victim
    assert on_disk["prior"]["matching"]["rank1"] == 1 / 6
    assert on_disk["prior"]["matching"]["mean_rank_percentile"] == pytest.approx(0.5)
    _, originals = load_pairs(attacker)
    assert torch.allclose(attacker_prior(attacker, 64, 32), originals.mean(0), atol=1e-6)
    assert torch.allclose(attacker_prior(attacker, 64, 32, chunk=3), originals.mean(0), atol=1e-6)
    assert on_disk["victim"]["source_root"] != on_disk["attacker"]["source_root"]
    assert not on_disk["reused_weights"]
    grid = Image.open(tmp_path / "recovery_grid.png")
    assert grid.size == (6 * 36, 3 * 68)
    state = torch.load(tmp_path / "unet.pth", weights_only=True)
    assert isinstance(state, dict) and "model.model.0.weight" in state
    mtime = os.stat(tmp_path / "unet.pth").st_mtime_ns
    again = run_attack(attacker, victim, str(tmp_path), progress=False, **TINY)
    assert os.stat(tmp_path / "unet.pth").st_mtime_ns == mtime and again["reused_weights"]
    for way in ("pixel", "official"):
        assert again["metrics"][way] == pytest.approx(result["metrics"][way])
    # other training settings retrain
    run_attack(attacker, victim, str(tmp_path), progress=False, **{**TINY, "epochs": 1})
    assert os.stat(tmp_path / "unet.pth").st_mtime_ns != mtime


def test_cli_attack(folders, tmp_path):
    attacker, victim = folders
    out = tmp_path / "cli"
    assert main(["attack", "--attacker", attacker, "--victim", victim, "--output", str(out),
                 "--epochs", "1", "--width", "4", "--depth", "4", "--batch-size", "8",
                 "--lr", "0.001", "--seed", "1", "--device", "cpu", "--no-progress",
                 "--victim-chunk", "20"]) == 0
    results = json.loads((out / "attack.json").read_text())
    assert results["depth"] == 4 and results["width"] == 4 and results["epochs"] == 1
    assert np.isfinite(results["metrics"]["official"]["psnr"])
    assert (out / "unet.pth").exists() and (out / "recovery_grid.png").exists()


# ----------------------------------------------------------------------------- streamed pairs


def test_epoch_order_is_one_seeded_randperm_per_epoch():
    """Same seed, same order; each epoch is a fresh permutation from the same generator (the
    order the in-memory trainer used before the pairs were streamed)."""
    order = EpochOrder(10, torch.Generator().manual_seed(3))
    reference = torch.Generator().manual_seed(3)
    epochs = [list(order) for _ in range(3)]
    assert epochs == [torch.randperm(10, generator=reference).tolist() for _ in range(3)]
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert epochs[0] != epochs[1] and len(order) == 10


def test_pair_dataset_reads_what_load_pairs_loads(folders):
    attacker, _ = folders
    pairs = PairDataset.from_folder(attacker)
    protected, originals = load_pairs(attacker)
    assert len(pairs) == len(protected)
    for index in (0, len(pairs) - 1):
        assert torch.equal(pairs[index][0], protected[index])
        assert torch.equal(pairs[index][1], originals[index])
    resized = PairDataset.from_folder(attacker, 32, 16)
    assert resized[0][0].shape == resized[0][1].shape == (3, 32, 16)


def test_pair_dataset_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="equally long"):
        PairDataset(["a.png"], [], 64, 32)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png"):
        PairDataset([str(bad)], [str(bad)], 64, 32)[0]
    with pytest.raises(ValueError, match="at least one"):
        train_recovery_on_pairs(TensorDataset(torch.zeros(0, 3, 8, 8), torch.zeros(0, 3, 8, 8)))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_streamed_training_equals_in_memory_training(folders, num_workers):
    """Pairs read from disk batch by batch (in this process or a worker) give the very same
    weights as the same pairs held in memory: same seed, same batches."""
    attacker, _ = folders
    settings = {"width": 4, "depth": 4, "epochs": 2, "batch_size": 4, "seed": 1,
                "progress": False}
    in_memory = train_recovery(*load_pairs(attacker), **settings)
    streamed = train_recovery_on_pairs(PairDataset.from_folder(attacker),
                                       num_workers=num_workers, **settings)
    for (name, a), b in zip(in_memory.state_dict().items(), streamed.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_matches_the_device_argument(folders):
    attacker, _ = folders
    net = train_recovery_on_pairs(PairDataset.from_folder(attacker), width=4, depth=4,
                                  epochs=1, batch_size=4, device="cuda", progress=False)
    assert all(p.device.type == "cuda" for p in net.parameters())
    protected, _ = load_pairs(attacker)
    assert recover(net, protected[:2]).device.type == "cpu"


# ----------------------------------------------------------------------------- streamed victims

CROWD = 45  # victims: two full chunks of 20 and a last one of 5


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """A victim folder of 45 smooth random 64x32 images protected by a blur: more victims than
    the small chunks of the streaming tests."""
    base = tmp_path_factory.mktemp("crowd")
    root = base / "dataset"
    root.mkdir()
    records = []
    for index, image in enumerate(smooth_images(CROWD, 64, 32, seed=5)):
        name = f"{index:04d}_c1s1_{index:06d}_00.png"
        write_png(str(root / name), image)
        records.append(ImageRecord(str(root / name), name, index, 0, "gallery"))
    return protect_folder(Blur(sigma=1.5), records, str(root), base / "victim")


def in_memory_scores(attacker, victim, out_dir):
    """What run_attack computed before streaming: every victim loaded, recovered and scored at
    once by recovery_metrics; and the grid rows."""
    net = load_attacker(out_dir)
    protected, originals = load_pairs(victim)
    recovered = recover(net, protected)
    prior = attacker_prior(attacker, *protected.shape[-2:]).expand_as(originals).contiguous()
    scores = {"metrics": recovery_metrics(recovered, originals),
              "protected_vs_original": recovery_metrics(protected, originals),
              "prior": recovery_metrics(prior, originals)}
    index = _grid_index(len(protected))
    return scores, [protected[index], recovered[index], originals[index]]


def flat(scores):
    """{(kind, way, name): value} of the metrics dictionaries."""
    return {(kind, way, name): value for kind, ways in scores.items()
            for way, values in ways.items() for name, value in values.items()}


@pytest.mark.parametrize("victim_chunk", [20, 60])
def test_streamed_victims_score_as_all_at_once(folders, crowd, tmp_path, victim_chunk):
    """Chunks of 20 (three chunks, each ranked against the other two read from disk) or one
    chunk of all: the same attack.json numbers and grid as scoring all victims in memory."""
    attacker, _ = folders
    result = run_attack(attacker, crowd, str(tmp_path), progress=False,
                        victim_chunk=victim_chunk, **TINY)
    on_disk = json.loads((tmp_path / "attack.json").read_text())
    assert on_disk == json.loads(json.dumps(result)) and on_disk["num_victims"] == CROWD
    expected, rows = in_memory_scores(attacker, crowd, str(tmp_path))
    kinds = {kind: on_disk[kind] for kind in expected}
    assert set(flat(kinds)) == set(flat(expected))
    assert flat(kinds) == pytest.approx(flat(expected), rel=1e-6, abs=1e-9)
    # the prior gives every victim one image: its ranks order the originals by their distance
    assert kinds["prior"]["matching"]["rank1"] == 1 / CROWD
    assert kinds["prior"]["matching"]["mean_rank_percentile"] == pytest.approx(0.5)
    write_image_grid(rows, str(tmp_path / "expected.png"))
    grid = np.asarray(Image.open(tmp_path / "recovery_grid.png"), dtype=np.int16)
    reference = np.asarray(Image.open(tmp_path / "expected.png"), dtype=np.int16)
    # recovered in forward batches of 20 instead of 64: at most one 8-bit level apart
    assert grid.shape == reference.shape and np.abs(grid - reference).max() <= 1


def test_run_attack_never_loads_all_victims(folders, crowd, tmp_path, monkeypatch):
    """Neither side is loaded whole: victims are read 20 at a time, and matching reads each
    other chunk's originals again: N * ceil(N / 20) originals read in all."""
    from torchreid_pixelfade.attack import recovery
    from torchreid_pixelfade.store import ProtectedFolder
    attacker, _ = folders

    def refuse(*args, **kwargs):
        raise AssertionError("a whole folder was loaded into memory")

    monkeypatch.setattr(recovery, "load_pairs", refuse)
    monkeypatch.setattr(ProtectedFolder, "load", refuse)
    monkeypatch.setattr(ProtectedFolder, "load_pairs", refuse)
    protected_paths, original_paths = (set(paths) for paths in pairs_from_protected(crowd))
    reads = {"protected": [], "original": []}
    real_load_images = recovery.load_images

    def recording_load_images(paths, *args):
        for which, known in (("protected", protected_paths), ("original", original_paths)):
            if set(paths) <= known:
                reads[which].append(len(paths))
        return real_load_images(paths, *args)

    monkeypatch.setattr(recovery, "load_images", recording_load_images)
    result = run_attack(attacker, crowd, str(tmp_path), progress=False, victim_chunk=20, **TINY)
    assert result["num_train_pairs"] == len(PairDataset.from_folder(attacker))
    assert reads["protected"] == [20, 20, 5]
    assert max(reads["original"]) == 20 and sum(reads["original"]) == CROWD * 3


def test_run_attack_with_one_victim_and_a_bad_chunk(folders, crowd, tmp_path):
    """One victim: no matching, as recovery_metrics; a chunk that splits the official batches of
    20 is refused before training."""
    attacker, _ = folders
    with pytest.raises(ValueError, match="multiple of 20"):
        run_attack(attacker, crowd, str(tmp_path), progress=False, victim_chunk=30, **TINY)
    assert not (tmp_path / "unet.pth").exists()
    root = tmp_path / "one"
    root.mkdir()
    shutil.copy(pairs_from_protected(crowd)[1][0], root / "0000_c1s1_000000_00.png")
    record = ImageRecord(str(root / "0000_c1s1_000000_00.png"), "0000_c1s1_000000_00.png", 0, 0,
                         "gallery")
    single = protect_folder(Blur(sigma=1.5), [record], str(root), tmp_path / "victim")
    result = run_attack(attacker, single, str(tmp_path / "attack"), progress=False, **TINY)
    expected, _ = in_memory_scores(attacker, single, str(tmp_path / "attack"))
    assert result["num_victims"] == 1 and set(result["metrics"]) == {"pixel", "official"}
    assert flat({kind: result[kind] for kind in expected}) == pytest.approx(flat(expected),
                                                                            rel=1e-6)
