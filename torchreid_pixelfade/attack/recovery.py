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

Both sides are streamed from disk: the attacker's pairs batch by batch during training, the
victims chunk by chunk (:data:`VICTIM_CHUNK`) while they are attacked and scored, so memory does
not grow with either set beyond a few floats per victim.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset
from tqdm import tqdm

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..io import (atomic_torch_save, atomic_write_json, load_image_tensor, load_images,
                  write_image_grid)
from ..metrics.privacy import psnr, ssim
from ..store import ProtectedFolder
from .unet import UNet, max_depth

logger = logging.getLogger(__name__)

__all__ = ["pairs_from_protected", "load_pairs", "PairDataset", "EpochOrder", "train_recovery",
           "train_recovery_on_pairs", "recover",
           "recovery_metrics", "matching_scores", "attacker_prior", "run_attack", "load_attacker",
           "ATTACK_JSON",
           "GRID_PNG", "WEIGHTS"]

ATTACK_JSON = "attack.json"
GRID_PNG = "recovery_grid.png"
WEIGHTS = "unet.pth"
#: Most victims shown in the recovery grid.
GRID_IMAGES = 8
#: Batch size of the official per-batch min-max rescaling (the official test loader's).
OFFICIAL_BATCH = 20
#: Victims attacked and scored at once by :func:`run_attack`: a multiple of
#: :data:`OFFICIAL_BATCH`, so the official rescaling batches are those of the whole set, and of
#: :func:`recover`'s batch (64), so the forward batches are too. Memory: about ten float32
#: tensors of this many images (the chunk, its float64 copies while scoring, a block of other
#: originals), about 2.5 GB at 256x128.
VICTIM_CHUNK = 640


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


class PairDataset(Dataset):
    """(protected, original) image pairs read from disk one pair at a time.

    Only the two path lists stay in memory, so training memory does not grow with the number of
    pairs. Items are loaded exactly as :meth:`ProtectedFolder.load_pairs` loads them (same
    decoder and bilinear resize), so a batch equals the rows of the in-memory tensors.

    Args:
        protected_paths: paths of the protected PNGs.
        original_paths: paths of their originals, same length.
        height, width: size each image is loaded at.

    Raises:
        ValueError: if the lists differ in length or are empty.
    """

    def __init__(self, protected_paths: Sequence[str], original_paths: Sequence[str],
                 height: int, width: int) -> None:
        if len(protected_paths) != len(original_paths) or not protected_paths:
            raise ValueError(f"expected two equally long, non-empty path lists, got "
                             f"{len(protected_paths)} and {len(original_paths)} paths")
        self.protected_paths, self.original_paths = list(protected_paths), list(original_paths)
        self.height, self.width = height, width

    @classmethod
    def from_folder(cls, folder: str, height: int | None = None, width: int | None = None
                    ) -> "PairDataset":
        """The pairs of a ``protect`` output folder, sorted by protected path, at ``height x
        width`` (None: the size stored in the manifest).

        Raises:
            FileNotFoundError: without a manifest. ValueError: if it lists no images.
        """
        opened = open_folder(folder)
        size = (height, width) if height and width else opened.image_size
        return cls(*opened.pairs(), *size)

    def __len__(self) -> int:
        return len(self.protected_paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(protected, original)``, two ``(3, H, W)`` float tensors in [0, 1].

        Raises:
            ImageReadError: naming an unreadable image.
        """
        return (load_image_tensor(self.protected_paths[index], self.height, self.width),
                load_image_tensor(self.original_paths[index], self.height, self.width))


class EpochOrder(Sampler):
    """One ``torch.randperm`` of the indices per pass, drawn from ``generator``: the shuffling
    of every epoch depends only on the seed and the number of pairs (unlike ``RandomSampler``,
    whose draws per pass depend on its ``num_samples``)."""

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size, self.generator = size, generator

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.size, generator=self.generator).tolist())

    def __len__(self) -> int:
        return self.size


def _train_epoch(net: UNet, optimizer: torch.optim.Optimizer, batches: DataLoader,
                 device: torch.device) -> float:
    """One pass over the shuffled batches; returns the mean L1 loss per image."""
    total, count = 0.0, 0
    for inputs, targets in batches:
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        loss = torch.nn.functional.l1_loss(net(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(inputs)
        count += len(inputs)
    return total / count


def _new_unet(width: int, depth: int, seed: int) -> UNet:
    """A freshly initialised UNet; the global RNG is used under a seed and then restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(width=width, depth=depth)


def train_recovery(protected: torch.Tensor, originals: torch.Tensor, width: int = 64,
                   depth: int | None = None, epochs: int = 100, batch_size: int = 16,
                   lr: float = 1e-3, seed: int = 0, device: str | torch.device = "cpu",
                   progress: bool = True) -> UNet:
    """Trains a U-Net to map protected images back to their originals (L1 loss, Adam), from
    pairs held in memory; see :func:`train_recovery_on_pairs` for pairs streamed from disk.

    Args:
        protected: ``(N, 3, H, W)`` protected pixel images in [0, 1] (any device; batches are
            taken from a CPU copy).
        originals: same shape, the originals in [0, 1].
        width, depth, epochs, batch_size, lr, seed, device, progress: see
            :func:`train_recovery_on_pairs`.

    Returns:
        The trained :class:`UNet` on ``device``, in eval mode.

    Raises:
        ValueError: for bad shapes, ``epochs < 0``, ``batch_size < 1`` or a size that ``depth``
            does not divide.
    """
    _check_pairs(protected, originals)
    pairs = TensorDataset(protected.cpu(), originals.cpu())  # batches are moved to ``device``
    return train_recovery_on_pairs(pairs, width=width, depth=depth,
                                   epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                   device=device, progress=progress)


def train_recovery_on_pairs(pairs: Dataset, width: int = 64, depth: int | None = None,
                            epochs: int = 100, batch_size: int = 16, lr: float = 1e-3,
                            seed: int = 0, device: str | torch.device = "cpu",
                            progress: bool = True, num_workers: int = 0) -> UNet:
    """Trains a U-Net to map protected images back to their originals (L1 loss, Adam), reading
    the pairs batch by batch (a :class:`PairDataset` keeps memory flat in the number of pairs).

    Args:
        pairs: a dataset of ``(protected, original)`` ``(3, H, W)`` tensors in [0, 1], all of one
            size (e.g. :meth:`PairDataset.from_folder`).
        width: U-Net base width (pix2pix ``ngf``; 64 officially).
        depth: U-Net down-samplings; None = the largest depth <= 7 dividing H and W.
        epochs: passes over the pairs (100 in the paper).
        batch_size: pairs per optimiser step (the last batch may be smaller).
        lr: Adam learning rate (default betas).
        seed: seeds the weight initialisation and the shuffling (a local ``torch.Generator``, one
            ``randperm`` per epoch; the global RNG state is left as it was). The same seed and
            pairs give the same batches, whether the pairs come from memory or from disk.
        device: where the network is trained (``"cuda"`` for a GPU); batches are moved there.
        progress: show a tqdm bar over epochs.
        num_workers: DataLoader processes reading pairs (0: read in this process). Does not
            change the batches.

    Returns:
        The trained :class:`UNet` on ``device``, in eval mode.

    Raises:
        ValueError: for no pairs, ``epochs < 0``, ``batch_size < 1``, ``num_workers < 0`` or a
            size that ``depth`` does not divide.
    """
    if len(pairs) == 0:
        raise ValueError("pairs: expected at least one (protected, original) pair, got none")
    if epochs < 0 or batch_size < 1 or num_workers < 0:
        raise ValueError(f"epochs and num_workers must be >= 0 and batch_size >= 1, got "
                         f"{epochs}, {num_workers}, {batch_size}")
    device = torch.device(device)
    height, image_width = pairs[0][0].shape[-2:]
    depth = max_depth(height, image_width) if depth is None else depth
    net = _new_unet(width, depth, seed).to(device)
    net.check_size(height, image_width)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    # the loader's own generator seeds its workers, so it never draws from the global RNG
    batches = DataLoader(pairs, batch_size=batch_size,
                         sampler=EpochOrder(len(pairs), torch.Generator().manual_seed(seed)),
                         generator=torch.Generator().manual_seed(seed),
                         num_workers=num_workers, persistent_workers=num_workers > 0,
                         pin_memory=device.type == "cuda")
    net.train()
    for epoch in tqdm(range(epochs), desc="recovery attack", unit="epoch", disable=not progress):
        loss = _train_epoch(net, optimizer, batches, device)
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
    """Per-image ``(psnr, ssim)``, ``(N,)`` float64 each, after the official normalisation and
    min-max rescaling of each consecutive batch of ``batch_size`` images."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    psnrs, ssims = [], []
    for start in range(0, len(recovered), batch_size):
        rec = _minmax((recovered[start:start + batch_size].double() - mean) / std)
        ori = _minmax((originals[start:start + batch_size].double() - mean) / std)
        psnrs.append(psnr(rec, ori))
        ssims.append(ssim(rec, ori))
    return np.concatenate(psnrs), np.concatenate(ssims)


def _per_image_scores(images: torch.Tensor, originals: torch.Tensor, batch_size: int
                      ) -> tuple[np.ndarray, ...]:
    """Per-image scores of ``images`` against ``originals``, both ``(N, 3, H, W)`` in [0, 1] on
    the CPU.

    Returns:
        ``(pixel psnr, pixel ssim, official psnr, official ssim)``, ``(N,)`` float64 each (see
        :func:`recovery_metrics`; official batches start at row 0).
    """
    official_psnr, official_ssim = _official_scores(images, originals, batch_size)
    return psnr(images, originals), ssim(images, originals), official_psnr, official_ssim


def _summarise(pixel_psnr: np.ndarray, pixel_ssim: np.ndarray, official_psnr: np.ndarray,
               official_ssim: np.ndarray) -> dict:
    """``{"pixel": {"psnr", "ssim"}, "official": {"psnr", "ssim"}}``: means of the per-image
    scores of :func:`_per_image_scores`."""
    return {"pixel": {"psnr": float(np.mean(pixel_psnr)), "ssim": float(np.mean(pixel_ssim))},
            "official": {"psnr": float(np.mean(official_psnr)),
                         "ssim": float(np.mean(official_ssim))}}


def _distances(queries: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``(k, m)`` between flat float rows ``(k, D)`` and ``(m, D)``, always
    by matrix product (``torch.cdist`` would pick its method by the block's size), so that the
    in-memory and the streamed matching compute every distance the same way."""
    return torch.cdist(queries, originals, compute_mode="use_mm_for_euclid_dist")


def _closer_counts(distances: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """How many of each row's distances are strictly below its own original's distance.

    Args:
        distances: ``(k, m)`` distances of k images to m originals (any block of them).
        own: ``(k,)`` each image's distance to its own original.

    Returns:
        ``(k,)`` int64 counts; summed over blocks covering all originals: the rank of the own
        original (0 = nearest; ties are not counted against it).
    """
    return (distances < own[:, None]).sum(dim=1)


def _matching_summary(ranks: torch.Tensor) -> dict:
    """``{"rank1", "rank1_chance", "mean_rank_percentile"}`` of ``(N,)`` own-original ranks
    (N >= 2; see :func:`matching_scores`)."""
    ranks = ranks.double()
    return {"rank1": float((ranks == 0).double().mean()), "rank1_chance": 1.0 / len(ranks),
            "mean_rank_percentile": float(ranks.mean() / (len(ranks) - 1))}


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
        distances = _distances(recovered[start:start + chunk], originals)
        own = distances[torch.arange(len(distances)), start + torch.arange(len(distances))]
        ranks.append(_closer_counts(distances, own))
    return _matching_summary(torch.cat(ranks))


def _streamed_ranks(queries: Sequence[torch.Tensor], originals: torch.Tensor,
                    other_originals: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Own-original ranks of a chunk of victims among all originals, the others read
    block by block: the streamed form of :func:`matching_scores`.

    Args:
        queries: images to rank, each ``(k, 3, H, W)`` in [0, 1] (e.g. recovered and protected)
            of the chunk's k victims.
        originals: ``(k, 3, H, W)``, the chunk's own originals, row i that of query row i.
        other_originals: every other original exactly once, in blocks ``(m, 3, H, W)``.

    Returns:
        One ``(k,)`` int64 rank tensor per query tensor (0 = own original nearest).
    """
    flat = [images.flatten(1).float() for images in queries]
    own_block = originals.flatten(1).float()
    owns, ranks = [], []
    for images in flat:  # the own distance comes from the block it is compared within
        distances = _distances(images, own_block)
        owns.append(distances.diagonal().clone())
        ranks.append(_closer_counts(distances, owns[-1]))
    for block in other_originals:
        block = block.flatten(1).float()
        for images, own, rank in zip(flat, owns, ranks):
            rank += _closer_counts(_distances(images, block), own)
    return ranks


def _constant_ranks(distances: torch.Tensor) -> torch.Tensor:
    """Own-original ranks when every victim gets one and the same image (the prior).

    Then every row of :func:`matching_scores`' distances is the same vector, so victim i's rank
    counts the originals strictly closer to the image than its own original.

    Args:
        distances: ``(N,)`` distances of the image to each victim's original.

    Returns:
        ``(N,)`` int64 ranks.
    """
    return torch.searchsorted(distances.sort().values, distances, side="left")


def recovery_metrics(recovered: torch.Tensor, originals: torch.Tensor,
                     batch_size: int = OFFICIAL_BATCH) -> dict:
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
    scores = _summarise(*_per_image_scores(recovered, originals, batch_size))
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


class _ScoreParts:
    """Per-image scores of one kind of image (recovered, protected or the prior) against the
    victims' originals, gathered chunk by chunk: a few numbers per victim, never an image."""

    def __init__(self) -> None:
        self.scores: list[tuple[np.ndarray, ...]] = []
        self.ranks: list[torch.Tensor] = []

    def add_ranks(self, ranks: torch.Tensor) -> None:
        """Adds own-original ranks ``(k,)`` of the next victims (see :func:`matching_scores`)."""
        self.ranks.append(ranks)

    def add(self, images: torch.Tensor, originals: torch.Tensor) -> None:
        """Scores a chunk ``(k, 3, H, W)`` in [0, 1] against its originals (same shape); the
        chunk must start at a multiple of :data:`OFFICIAL_BATCH`."""
        self.scores.append(_per_image_scores(images, originals, OFFICIAL_BATCH))

    def summary(self) -> dict:
        """The :func:`recovery_metrics` dictionary of all chunks added (``matching`` only when
        ranks were added)."""
        scores = _summarise(*(np.concatenate(parts) for parts in zip(*self.scores)))
        if self.ranks:
            scores["matching"] = _matching_summary(torch.cat(self.ranks))
        return scores


def _load_originals(victims: PairDataset, start: int, stop: int) -> torch.Tensor:
    """Originals ``start:stop`` of ``victims``, ``(k, 3, H, W)`` in [0, 1] (as its items)."""
    return load_images(victims.original_paths[start:stop], victims.height, victims.width)


def _other_originals(victims: PairDataset, start: int, chunk: int) -> Iterator[torch.Tensor]:
    """All originals of ``victims`` but the chunk at ``start``, read from disk ``chunk`` at a
    time (the chunks of :func:`_attack_victims`)."""
    for other in range(0, len(victims), chunk):
        if other != start:
            yield _load_originals(victims, other, other + chunk)


def check_victim_chunk(chunk: int) -> None:
    """Raises ValueError unless ``chunk`` is a positive multiple of :data:`OFFICIAL_BATCH`."""
    if chunk < 1 or chunk % OFFICIAL_BATCH:
        raise ValueError(f"victim_chunk must be a positive multiple of {OFFICIAL_BATCH} (the "
                         f"official rescaling batch), got {chunk}")


def _attack_victims(net: UNet, victims: PairDataset, prior: torch.Tensor, chunk: int,
                    progress: bool = False) -> tuple[dict, list[torch.Tensor]]:
    """Attacks and scores the victims ``chunk`` at a time, as :func:`recovery_metrics` scores
    them all at once (same official batches when ``chunk`` is a multiple of
    :data:`OFFICIAL_BATCH`).

    Matching compares every victim with every original: for each chunk, the other originals are
    read again from disk, N * (ceil(N / chunk) - 1) extra image reads in all. The prior, one
    image for every victim, needs only its N distances.

    Args:
        net: the trained recovery U-Net.
        victims: the victims' pairs (read at its size).
        prior: ``(3, H, W)`` in [0, 1], the image the prior outputs for every victim.
        chunk: victims in memory at once (a multiple of :data:`OFFICIAL_BATCH`).
        progress: show a tqdm bar over chunks.

    Returns:
        ``({"metrics", "protected_vs_original", "prior"}, grid rows)``: three
        :func:`recovery_metrics` dictionaries, and the protected, recovered and original images
        of the :func:`_grid_index` victims, ``(G, 3, H, W)`` each.

    Raises:
        ValueError: if ``chunk`` is not a positive multiple of :data:`OFFICIAL_BATCH`.
    """
    check_victim_chunk(chunk)
    count, grid_index = len(victims), _grid_index(len(victims))
    parts = {kind: _ScoreParts() for kind in ("metrics", "protected_vs_original", "prior")}
    prior_distances, rows = [], ([], [], [])
    for start in tqdm(range(0, count, chunk), desc="attacking victims", unit="chunk",
                      disable=not progress):
        protected = load_images(victims.protected_paths[start:start + chunk], victims.height,
                                victims.width)
        originals = _load_originals(victims, start, start + chunk)
        recovered = recover(net, protected)
        parts["metrics"].add(recovered, originals)
        parts["protected_vs_original"].add(protected, originals)
        parts["prior"].add(prior.expand_as(originals).contiguous(), originals)
        if count >= 2:
            ranks = _streamed_ranks((recovered, protected), originals,
                                    _other_originals(victims, start, chunk))
            parts["metrics"].add_ranks(ranks[0])
            parts["protected_vs_original"].add_ranks(ranks[1])
            prior_distances.append(_distances(prior.flatten()[None].float(),
                                              originals.flatten(1).float())[0])
        shown = grid_index[(grid_index >= start) & (grid_index < start + len(protected))] - start
        for row, images in zip(rows, (protected, recovered, originals)):
            row.append(images[shown])
    if count >= 2:
        parts["prior"].add_ranks(_constant_ranks(torch.cat(prior_distances)))
    return ({kind: part.summary() for kind, part in parts.items()},
            [torch.cat(row) for row in rows])


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
                   device: str | torch.device, progress: bool, num_workers: int = 0
                   ) -> tuple[UNet, float, bool]:
    """Loads ``unet.pth`` when trained with the same settings, else trains on the attacker's pairs
    (streamed from disk) and saves it. Returns ``(net, seconds spent training, reused)``."""
    weights = os.path.join(out_dir, WEIGHTS)
    previous = _previous_training(out_dir, training)
    if previous is not None:
        logger.info("reusing %s (same training settings)", weights)
        net = load_attacker(out_dir, device)
        return net, float(previous.get("seconds_training", 0.0)), True
    pairs = PairDataset.from_folder(attacker_folder, *training["image_size"])
    logger.info("training the recovery U-Net on %d pairs of %s", len(pairs), attacker_folder)
    began = time.perf_counter()
    net = train_recovery_on_pairs(pairs, width=training["width"], depth=training["depth"],
                                  epochs=training["epochs"], batch_size=training["batch_size"],
                                  lr=training["lr"], seed=training["seed"], device=device,
                                  progress=progress, num_workers=num_workers)
    seconds = time.perf_counter() - began
    atomic_torch_save(net.state_dict(), weights)
    # record the settings at once, so an interrupted run resumes without retraining
    atomic_write_json(os.path.join(out_dir, ATTACK_JSON),
                      {"training": training, "seconds_training": seconds})
    return net, seconds, False


def run_attack(attacker_folder: str, victim_folder: str, out_dir: str, width: int = 64,
               depth: int | None = None, epochs: int = 100, batch_size: int = 16,
               lr: float = 1e-3, seed: int = 0, device: str | torch.device = "cpu",
               progress: bool = True, num_workers: int = 0,
               victim_chunk: int = VICTIM_CHUNK) -> dict:
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
        width, depth, epochs, batch_size, lr, seed, device, progress, num_workers: see
            :func:`train_recovery_on_pairs` (the attacker's pairs are streamed from disk).
        victim_chunk: victims read, attacked and scored at once (a multiple of
            :data:`OFFICIAL_BATCH`); memory is flat in the number of victims N. The scores are
            those of :func:`recovery_metrics` on all victims at once (up to float summation
            order), but matching compares each victim with every original, so the originals are
            read again for each chunk: N * (ceil(N / victim_chunk) - 1) extra image reads.

    Returns:
        ``{"metrics", "protected_vs_original", "prior", "num_train_pairs", "num_victims", "epochs",
        "width", "depth", "batch_size", "lr", "seed", "attacker", "victim", "training",
        "seconds_training", "reused_weights"}``; ``metrics`` and ``protected_vs_original`` as in
        :func:`recovery_metrics` (recovered vs original, and the victims' protected vs original
        for reference), ``prior`` the same for :func:`attacker_prior` output for every victim
        (the floor a recovery must beat); ``attacker`` / ``victim`` hold each folder's absolute
        path, source root, protection identity and image count.

    Raises:
        ValueError: if ``victim_chunk`` is not a positive multiple of :data:`OFFICIAL_BATCH`.
    """
    check_victim_chunk(victim_chunk)
    os.makedirs(out_dir, exist_ok=True)
    attacker, victim = _folder_info(attacker_folder), _folder_info(victim_folder)
    height, image_width = attacker["identity"]["height"], attacker["identity"]["width"]
    depth = max_depth(height, image_width) if depth is None else depth
    training = {"attacker": attacker, "num_train_pairs": attacker["num_images"],
                "image_size": [height, image_width], "width": width, "depth": depth,
                "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    net, seconds, reused = _load_or_train(out_dir, training, attacker_folder, device, progress,
                                          num_workers)
    victims = PairDataset.from_folder(victim_folder)  # at the victim manifest's size
    if (victims.height, victims.width) != (height, image_width):
        logger.warning("victim images are %dx%d, attacker images %dx%d",
                       victims.height, victims.width, height, image_width)
    prior = attacker_prior(attacker_folder, victims.height, victims.width)
    scores, grid = _attack_victims(net, victims, prior, victim_chunk, progress)
    result = {**scores,
              "num_train_pairs": attacker["num_images"], "num_victims": len(victims),
              "epochs": epochs, "width": width, "depth": depth, "batch_size": batch_size,
              "lr": lr, "seed": seed, "attacker": attacker, "victim": victim,
              "training": training, "seconds_training": seconds, "reused_weights": reused}
    write_image_grid(grid, os.path.join(out_dir, GRID_PNG))
    atomic_write_json(os.path.join(out_dir, ATTACK_JSON), result)
    logger.info("recovery attack: pixel PSNR %.2f dB SSIM %.3f (protected vs original: %.2f dB, "
                "%.3f); results in %s", result["metrics"]["pixel"]["psnr"],
                result["metrics"]["pixel"]["ssim"],
                result["protected_vs_original"]["pixel"]["psnr"],
                result["protected_vs_original"]["pixel"]["ssim"], out_dir)
    return result
