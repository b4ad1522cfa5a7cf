"""Recovery (reconstruction) attack on protected images, after the official PixelFade code.

Threat model: the attacker sends a public dataset through the black-box privacy service, so it
holds (protected, original) pairs; it trains an image-to-image network (the pix2pix U-Net of
:mod:`.unet`) with an L1 loss to invert the protection, then applies it to the victims'
protected images. Attacker and victim folders are ``protect`` outputs (PNG files +
``manifest.json``) and may come from different datasets.

Metrics are reported two ways (:func:`recovery_metrics`):

* ``"pixel"``: PSNR / SSIM per image between recovered and original pixels in [0, 1] (the honest
  headline);
* ``"official"``: the official code's way: both batches ImageNet-normalised, then each batch of
  ``batch_size`` images min-max rescaled to [0, 1] on its own (recovered and original separately,
  one global min / max over all images and channels) before the same per-image PSNR / SSIM. The
  rescaling stretches contrast differently on both sides, so these numbers are not pixel-space
  fidelity;
* ``"matching"``: where a recovered image ranks its own original among all victims' originals
  (pixel MSE): whether the recovery is of *this* person or of an average one.

:func:`run_attack` also scores the attacker's ``"prior"``: the mean of its training originals,
output for every victim. An attack that does not beat this constant image has learnt the
dataset's average pedestrian, not the victims.
"""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import torch
from tqdm import tqdm

from ..io import atomic_torch_save, atomic_write_json, write_image_grid
from ..metrics.privacy import psnr, ssim
from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..io import load_images
from ..store import ProtectedFolder
from .unet import UNet, max_depth

logger = logging.getLogger(__name__)

__all__ = ["pairs_from_protected", "load_pairs", "train_recovery", "recover",
           "recovery_metrics", "matching_scores", "attacker_prior", "run_attack", "load_attacker",
           "ATTACK_JSON",
           "GRID_PNG", "WEIGHTS"]

ATTACK_JSON = "attack.json"
GRID_PNG = "recovery_grid.png"
WEIGHTS = "unet.pth"
#: Most victims shown in the recovery grid.
GRID_IMAGES = 8


def open_folder(folder: str) -> ProtectedFolder:
    """A protected folder that lists at least one image.

    Raises:
        FileNotFoundError: if ``folder`` holds no manifest.
        ValueError: if the manifest lists no images.
    """
    opened = ProtectedFolder.open(folder)
    if not len(opened):
        raise ValueError(f"{folder}: the manifest lists no protected images")
    return opened


def pairs_from_protected(folder: str) -> tuple[list[str], list[str]]:
    """Paths of the protected images of a ``protect`` output folder and of their originals,
    sorted by the protected image's relative path.

    Returns:
        ``(protected_paths, original_paths)``, two lists of equal length.

    Raises:
        FileNotFoundError: if ``folder`` holds no manifest.
        ValueError: if the manifest lists no images.
    """
    return open_folder(folder).pairs()


def load_pairs(folder: str, height: int | None = None, width: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Loads the (protected, original) pairs of a ``protect`` output folder.

    Args:
        folder: a ``protect`` output folder.
        height, width: size to load at (bilinear resize); None = the size stored in the manifest.

    Returns:
        ``(protected, originals)``: float tensors ``(N, 3, H, W)`` in [0, 1].

    Raises:
        FileNotFoundError: without a manifest. ImageReadError: naming an unreadable image.
    """
    opened = open_folder(folder)
    size = (height, width) if height and width else None
    return opened.load_pairs(size=size)


def _check_pairs(protected: torch.Tensor, originals: torch.Tensor) -> None:
    if protected.dim() != 4 or protected.shape[1] != 3 or len(protected) == 0:
        raise ValueError(f"protected: expected a non-empty (N, 3, H, W) tensor, got shape "
                         f"{tuple(protected.shape)}")
    if protected.shape != originals.shape:
        raise ValueError(f"protected and originals must have the same shape, got "
                         f"{tuple(protected.shape)} vs {tuple(originals.shape)}")


def _train_epoch(net: UNet, optimizer: torch.optim.Optimizer, protected: torch.Tensor,
                 originals: torch.Tensor, batch_size: int, generator: torch.Generator,
                 device: torch.device) -> float:
    """One pass over shuffled pairs; returns the mean L1 loss per image."""
    order = torch.randperm(len(protected), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        inputs, targets = protected[index].to(device), originals[index].to(device)
        loss = torch.nn.functional.l1_loss(net(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
    return total / len(order)


def _new_unet(width: int, depth: int, seed: int) -> UNet:
    """A freshly initialised UNet; the global RNG is used under a seed and then restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(width=width, depth=depth)


def train_recovery(protected: torch.Tensor, originals: torch.Tensor, width: int = 64,
                   depth: int | None = None, epochs: int = 100, batch_size: int = 16,
                   lr: float = 1e-3, seed: int = 0, device: str | torch.device = "cpu",
                   progress: bool = True) -> UNet:
    """Trains a U-Net to map protected images back to their originals (L1 loss, Adam).

    Args:
        protected: ``(N, 3, H, W)`` protected pixel images in [0, 1] (any device).
        originals: same shape, the originals in [0, 1].
        width: U-Net base width (pix2pix ``ngf``; 64 officially).
        depth: U-Net down-samplings; None = the largest depth <= 7 dividing H and W.
        epochs: passes over the pairs (100 in the paper).
        batch_size: pairs per optimiser step (the last batch may be smaller).
        lr: Adam learning rate (default betas).
        seed: seeds the weight initialisation and the shuffling (a local ``torch.Generator``; the
            global RNG state is left as it was).
        device: where the network is trained; batches are moved there.
        progress: show a tqdm bar over epochs.

    Returns:
        The trained :class:`UNet` on ``device``, in eval mode.

    Raises:
        ValueError: for bad shapes, ``epochs < 0``, ``batch_size < 1`` or a size that ``depth``
            does not divide.
    """
    _check_pairs(protected, originals)
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    height, image_width = protected.shape[-2:]
    depth = max_depth(height, image_width) if depth is None else depth
    net = _new_unet(width, depth, seed).to(device)
    net.check_size(height, image_width)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for epoch in tqdm(range(epochs), desc="recovery attack", unit="epoch", disable=not progress):
        loss = _train_epoch(net, optimizer, protected, originals, batch_size, generator,
                            torch.device(device))
        logger.info("recovery epoch %d/%d: L1 %.4f", epoch + 1, epochs, loss)
    return net.eval()


@torch.no_grad()
def recover(net: UNet, protected: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Applies a trained U-Net in eval mode, batch by batch, without gradients.

    Args:
        net: a trained :class:`UNet` (left in eval mode).
        protected: ``(N, 3, H, W)`` protected pixel images in [0, 1].
        batch_size: images per forward pass.

    Returns:
        ``(N, 3, H, W)`` recovered pixel images in [0, 1], on ``protected``'s device.
    """
    if protected.dim() != 4:
        raise ValueError(f"protected: expected (N, 3, H, W), got {tuple(protected.shape)}")
    net.eval()
    device = next(net.parameters()).device
    outputs = [net(protected[start:start + batch_size].to(device)).to(protected.device)
               for start in range(0, len(protected), batch_size)]
    return torch.cat(outputs) if outputs else protected.new_empty(protected.shape)


def _minmax(batch: torch.Tensor) -> torch.Tensor:
    """Rescales a whole tensor to [0, 1] with one global min and max (a constant gives 0)."""
    low, high = batch.min(), batch.max()
    return (batch - low) / (high - low).clamp_min(1e-12)


def _official_scores(recovered: torch.Tensor, originals: torch.Tensor, batch_size: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    psnrs, ssims = [], []
    for start in range(0, len(recovered), batch_size):
        rec = _minmax((recovered[start:start + batch_size].double() - mean) / std)
        ori = _minmax((originals[start:start + batch_size].double() - mean) / std)
        psnrs.append(psnr(rec, ori))
        ssims.append(ssim(rec, ori))
    return np.concatenate(psnrs), np.concatenate(ssims)


def matching_scores(recovered: torch.Tensor, originals: torch.Tensor, chunk: int = 512) -> dict:
    """Does a recovered image point to its own original among all victims' originals?

    Each recovered image ranks the N originals by pixel MSE (0 = nearest).

    Args:
        recovered: ``(N, 3, H, W)`` images in [0, 1]; ``originals``: same shape, row i the
            original of recovered image i (N >= 2).
        chunk: recovered images compared at once (memory ``chunk x N`` distances).

    Returns:
        ``{"rank1", "rank1_chance", "mean_rank_percentile"}``: the fraction whose own original is
        the nearest (chance ``1 / N``, the originals themselves 1) and the mean rank of the own
        original divided by ``N - 1`` (0: always nearest; 0.5: no information about the victim).
    """
    _check_pairs(recovered, originals)
    if len(recovered) < 2:
        raise ValueError("matching needs at least 2 victims")
    recovered, originals = recovered.flatten(1).float(), originals.flatten(1).float()
    ranks = []
    for start in range(0, len(recovered), chunk):  # (chunk, N) distances at a time
        distances = torch.cdist(recovered[start:start + chunk], originals)
        own = distances[torch.arange(len(distances)), start + torch.arange(len(distances))]
        ranks.append((distances < own[:, None]).sum(dim=1))
    ranks = torch.cat(ranks).double()
    return {"rank1": float((ranks == 0).double().mean()), "rank1_chance": 1.0 / len(ranks),
            "mean_rank_percentile": float(ranks.mean() / (len(ranks) - 1))}


def recovery_metrics(recovered: torch.Tensor, originals: torch.Tensor, batch_size: int = 20
                     ) -> dict:
    """PSNR / SSIM of recovered images against their originals, in pixel space and the official way.

    Args:
        recovered: ``(N, 3, H, W)`` recovered pixel images in [0, 1] (H, W >= 11 for SSIM).
        originals: same shape, the originals in [0, 1].
        batch_size: batch size of the official per-batch min-max rescaling (20 in the official
            test loader); only ``"official"`` depends on it.

    Returns:
        ``{"pixel": {"psnr", "ssim"}, "official": {"psnr", "ssim"}, "matching": {...}}``: means
        over the N images (PSNR in dB, capped at 100 for identical images); ``matching`` as in
        :func:`matching_scores` (only for N >= 2).

    Raises:
        ValueError: for bad or different shapes, or ``batch_size < 1``.
    """
    _check_pairs(recovered, originals)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    recovered, originals = recovered.detach().cpu(), originals.detach().cpu()
    official_psnr, official_ssim = _official_scores(recovered, originals, batch_size)
    scores = {"pixel": {"psnr": float(np.mean(psnr(recovered, originals))),
                        "ssim": float(np.mean(ssim(recovered, originals)))},
              "official": {"psnr": float(np.mean(official_psnr)),
                           "ssim": float(np.mean(official_ssim))}}
    if len(recovered) >= 2:
        scores["matching"] = matching_scores(recovered, originals)
    return scores


def attacker_prior(attacker_folder: str, height: int, width: int, chunk: int = 256
                   ) -> torch.Tensor:
    """The mean of the attacker's original images, ``(3, H, W)`` in [0, 1]: what an attacker
    outputs who ignores the protected image (the floor any recovery must beat)."""
    original_paths = pairs_from_protected(attacker_folder)[1]
    total = torch.zeros(3, height, width, dtype=torch.float64)
    for start in range(0, len(original_paths), chunk):  # a large attacker set never sits in memory
        total += load_images(original_paths[start:start + chunk], height, width).double().sum(0)
    return (total / len(original_paths)).float()


def _grid_index(count: int) -> torch.Tensor:
    """Up to :data:`GRID_IMAGES` indices spread evenly over ``count`` images."""
    return torch.linspace(0, count - 1, min(count, GRID_IMAGES)).round().long().unique()


def _folder_info(folder: str) -> dict:
    opened = open_folder(folder)
    return {"folder": os.path.abspath(folder), "source_root": opened.source_root,
            "identity": opened.identity.to_dict(), "num_images": len(opened)}


def load_attacker(out_dir: str, device: str | torch.device = "cpu") -> UNet:
    """The recovery U-Net an attack trained into ``out_dir`` (``attack.json`` + ``unet.pth``),
    in eval mode on ``device`` (weights are read on the CPU first, so a GPU-trained attacker
    opens anywhere).

    Raises:
        FileNotFoundError: if either file is missing.
    """
    with open(os.path.join(out_dir, ATTACK_JSON)) as handle:
        training = json.load(handle)["training"]
    net = UNet(width=training["width"], depth=training["depth"])
    state = torch.load(os.path.join(out_dir, WEIGHTS), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.to(device).eval()


def _previous_training(out_dir: str, training: dict) -> dict | None:
    """The ``attack.json`` record of ``out_dir`` if its ``unet.pth`` was trained with exactly
    ``training`` settings, else None."""
    path = os.path.join(out_dir, ATTACK_JSON)
    if not os.path.exists(os.path.join(out_dir, WEIGHTS)) or not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            record = json.load(handle)
        except json.JSONDecodeError:
            return None
    return record if record.get("training") == training else None


def _load_or_train(out_dir: str, training: dict, attacker_folder: str,
                   device: str | torch.device, progress: bool) -> tuple[UNet, float, bool]:
    """Loads ``unet.pth`` when trained with the same settings, else trains on the attacker's pairs
    and saves it. Returns ``(net, seconds spent training, reused)``."""
    weights = os.path.join(out_dir, WEIGHTS)
    previous = _previous_training(out_dir, training)
    if previous is not None:
        logger.info("reusing %s (same training settings)", weights)
        net = load_attacker(out_dir, device)
        return net, float(previous.get("seconds_training", 0.0)), True
    protected, originals = load_pairs(attacker_folder, *training["image_size"])
    logger.info("training the recovery U-Net on %d pairs of %s", len(protected), attacker_folder)
    began = time.perf_counter()
    net = train_recovery(protected, originals, width=training["width"], depth=training["depth"],
                         epochs=training["epochs"], batch_size=training["batch_size"],
                         lr=training["lr"], seed=training["seed"], device=device,
                         progress=progress)
    seconds = time.perf_counter() - began
    atomic_torch_save(net.state_dict(), weights)
    # record the settings at once, so an interrupted run resumes without retraining
    atomic_write_json(os.path.join(out_dir, ATTACK_JSON),
                      {"training": training, "seconds_training": seconds})
    return net, seconds, False


def run_attack(attacker_folder: str, victim_folder: str, out_dir: str, width: int = 64,
               depth: int | None = None, epochs: int = 100, batch_size: int = 16,
               lr: float = 1e-3, seed: int = 0, device: str | torch.device = "cpu",
               progress: bool = True) -> dict:
    """Trains the recovery U-Net on the attacker's pairs and attacks the victims' images.

    Attacker images are loaded at the attacker manifest's size, victim images at the victim
    manifest's size (both must be divisible by ``2 ** depth``). Writes into ``out_dir``:
    ``attack.json`` (the returned dictionary), ``recovery_grid.png`` (rows: protected, recovered,
    original for up to 8 victims) and ``unet.pth`` (the trained state dict). When ``unet.pth``
    exists and ``attack.json`` records the same training settings, the weights are reused.

    Args:
        attacker_folder: ``protect`` output folder whose pairs the attacker trains on.
        victim_folder: ``protect`` output folder of the victims (any dataset).
        out_dir: output folder (created if needed).
        width, depth, epochs, batch_size, lr, seed, device, progress: see :func:`train_recovery`.

    Returns:
        ``{"metrics", "protected_vs_original", "prior", "num_train_pairs", "num_victims", "epochs",
        "width", "depth", "batch_size", "lr", "seed", "attacker", "victim", "training",
        "seconds_training", "reused_weights"}``; ``metrics`` and ``protected_vs_original`` as in
        :func:`recovery_metrics` (recovered vs original, and the victims' protected vs original
        for reference), ``prior`` the same for :func:`attacker_prior` output for every victim
        (the floor a recovery must beat); ``attacker`` / ``victim`` hold each folder's absolute
        path, source root, protection identity and image count.
    """
    os.makedirs(out_dir, exist_ok=True)
    attacker, victim = _folder_info(attacker_folder), _folder_info(victim_folder)
    height, image_width = attacker["identity"]["height"], attacker["identity"]["width"]
    depth = max_depth(height, image_width) if depth is None else depth
    training = {"attacker": attacker, "num_train_pairs": attacker["num_images"],
                "image_size": [height, image_width], "width": width, "depth": depth,
                "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    net, seconds, reused = _load_or_train(out_dir, training, attacker_folder, device, progress)
    protected, originals = load_pairs(victim_folder)
    if tuple(protected.shape[-2:]) != (height, image_width):
        logger.warning("victim images are %dx%d, attacker images %dx%d",
                       *protected.shape[-2:], height, image_width)
    recovered = recover(net, protected)
    prior = attacker_prior(attacker_folder, *protected.shape[-2:]).expand_as(originals)
    result = {"metrics": recovery_metrics(recovered, originals),
              "protected_vs_original": recovery_metrics(protected, originals),
              "prior": recovery_metrics(prior.contiguous(), originals),
              "num_train_pairs": attacker["num_images"], "num_victims": len(protected),
              "epochs": epochs, "width": width, "depth": depth, "batch_size": batch_size,
              "lr": lr, "seed": seed, "attacker": attacker, "victim": victim,
              "training": training, "seconds_training": seconds, "reused_weights": reused}
    index = _grid_index(len(protected))
    write_image_grid([protected[index], recovered[index], originals[index]],
                     os.path.join(out_dir, GRID_PNG))
    atomic_write_json(os.path.join(out_dir, ATTACK_JSON), result)
    logger.info("recovery attack: pixel PSNR %.2f dB SSIM %.3f (protected vs original: %.2f dB, "
                "%.3f); results in %s", result["metrics"]["pixel"]["psnr"],
                result["metrics"]["pixel"]["ssim"],
                result["protected_vs_original"]["pixel"]["psnr"],
                result["protected_vs_original"]["pixel"]["ssim"], out_dir)
    return result
