"""Re-ID and privacy evaluation of stored protected images.

Every number comes from the images as stored: protected PNGs are read back from disk and their
features re-extracted; nothing is reused from the optimisation.

The four settings of the paper (query x gallery): O2O (original, original), P2P (protected,
protected), O2P (original query, protected gallery), P2O (protected query, original gallery).
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from ._torchreid import tr
from .metrics import anderson_darling, compute_distances, evaluate_rank, psnr, ssim
from .models import AuthorizedModel
from .store import load_images, load_manifest, stored_pairs

logger = logging.getLogger(__name__)

SETTINGS = ("O2O", "P2P", "O2P", "P2O")


@torch.no_grad()
def extract_features(model: AuthorizedModel, images: torch.Tensor, batch_size: int = 128,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """Features ``(N, D)`` (on CPU) of pixel images ``(N, 3, H, W)``, in batches on ``device``."""
    chunks = [model(images[i:i + batch_size].to(device)).cpu()
              for i in range(0, len(images), batch_size)]
    return torch.cat(chunks)


def setting_distances(query: dict, gallery: dict, setting: str, metric: str = "euclidean",
                      normalize: bool = True, rerank: bool = False) -> np.ndarray:
    """Query-gallery distances ``(Q, G)`` of one setting, with torchreid's optional re-ranking."""
    qf, gf = query[setting[0]], gallery[setting[2]]
    distmat = compute_distances(qf, gf, metric, normalize)
    if rerank:
        distmat = tr.utils.re_ranking(distmat, compute_distances(qf, qf, metric, normalize),
                                      compute_distances(gf, gf, metric, normalize))
    return distmat


def four_settings(query: dict, gallery: dict, q_labels: tuple, g_labels: tuple,
                  metric: str = "euclidean", normalize: bool = True,
                  ranks: Sequence[int] = (1, 5, 10), rerank: bool = False) -> dict:
    """Rank-k, mAP and mINP of O2O, P2P, O2P and P2O.

    Args:
        query: ``{'O': (Q, D) features of originals, 'P': (Q, D) of protected}``.
        gallery: the same for the gallery, ``(G, D)``.
        q_labels: ``(pids, camids)`` of the queries; ``g_labels`` of the gallery.
        metric: 'euclidean' (squared) or 'cosine', as torchreid's ``dist_metric``.
        normalize: L2-normalise features first (torchreid's ``normalize_feature``).
        ranks: CMC ranks reported as ``rank{k}`` (1, 5 and 10 always are).
        rerank: apply torchreid's k-reciprocal re-ranking (as ``test.rerank``).

    Returns:
        ``{setting: {'rank1': ..., 'mAP': ..., 'mINP': ...}}``, fractions in [0, 1].
    """
    results = {}
    ranks = tuple(sorted({1, 5, 10, *ranks}))
    for setting in SETTINGS:
        distmat = setting_distances(query, gallery, setting, metric, normalize, rerank)
        result = evaluate_rank(distmat, q_labels[0], g_labels[0], q_labels[1], g_labels[1])
        results[setting] = result.to_dict(ranks=ranks)
    return results


def _manifest_split(out_dir: str, manifest: dict, split: str) -> tuple[list[str], list[str], tuple]:
    keys, protected, originals = stored_pairs(out_dir, manifest, split)
    entries = [manifest["images"][k] for k in keys]
    labels = (np.array([e["pid"] for e in entries]), np.array([e["camid"] for e in entries]))
    return protected, originals, labels


def privacy_summary(protected: torch.Tensor, originals: torch.Tensor) -> dict:
    """Means of SSIM and PSNR (protected vs original) and of the Anderson-Darling statistic."""
    ad = anderson_darling(protected)
    return {"ssim": float(np.mean(ssim(protected, originals))),
            "psnr": float(np.mean(psnr(protected, originals))),
            "ad": float(np.mean(ad)), "ad_median": float(np.median(ad))}


def protection_summary(manifest: dict) -> dict:
    """Name, steps, constraint-met fraction and seconds per image of a manifest."""
    settings = manifest["settings"]
    met = [e["constraint_met"] for e in manifest["images"].values() if "constraint_met" in e]
    count = max(manifest["num_protected"], 1)
    return {"name": settings["protector"], "steps": settings["hparams"].get("steps", 0),
            "constraint_met_fraction": float(np.mean(met)) if met else None,
            "seconds_per_image": manifest["seconds"] / count}


def evaluate_protected(model: AuthorizedModel, out_dir: str, metric: str = "euclidean",
                       normalize: bool = True, ranks: Sequence[int] = (1, 5, 10),
                       batch_size: int = 128, device: str | torch.device = "cpu") -> dict:
    """Evaluates a ``protect`` output folder against the original images it came from.

    Protected query and gallery are read back from their PNG files, originals from the source
    dataset named in the manifest, both at the stored image size.

    Returns:
        The ``results.json`` dictionary (settings, privacy, protection, sizes, model, dataset).
    """
    manifest = load_manifest(out_dir)
    if manifest is None:
        raise FileNotFoundError(f"{out_dir}: no manifest.json; run `protect` first")
    height, width = manifest["settings"]["height"], manifest["settings"]["width"]
    features, labels, pixels = {}, {}, {}
    for split in ("query", "gallery"):
        protected_paths, original_paths, labels[split] = _manifest_split(out_dir, manifest, split)
        if not protected_paths:
            raise ValueError(f"{out_dir}: no protected {split} images in the manifest")
        pixels[split] = {"P": load_images(protected_paths, height, width),
                         "O": load_images(original_paths, height, width)}
        features[split] = {side: extract_features(model, images, batch_size, device)
                           for side, images in pixels[split].items()}
    settings = four_settings(features["query"], features["gallery"], labels["query"],
                             labels["gallery"], metric, normalize, ranks)
    protected = torch.cat([pixels["query"]["P"], pixels["gallery"]["P"]])
    originals = torch.cat([pixels["query"]["O"], pixels["gallery"]["O"]])
    return {"settings": settings, "privacy": privacy_summary(protected, originals),
            "protection": protection_summary(manifest),
            "num_query": len(labels["query"][0]), "num_gallery": len(labels["gallery"][0]),
            "model": manifest["settings"]["model"],
            "dataset": manifest["settings"].get("dataset", manifest["source_root"])}


def results_markdown(results: dict) -> str:
    """A markdown table of the four settings plus the privacy and protection lines."""
    lines = ["| setting | Rank-1 | Rank-5 | Rank-10 | mAP | mINP |", "|---|---|---|---|---|---|"]
    for name in SETTINGS:
        row = results["settings"][name]
        values = [row.get(k, float("nan")) for k in ("rank1", "rank5", "rank10", "mAP", "mINP")]
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
    privacy, protection = results["privacy"], results["protection"]
    met = protection["constraint_met_fraction"]
    lines += ["", f"Privacy (protected vs original, mean over {results['num_query']} query + "
              f"{results['num_gallery']} gallery images): SSIM {privacy['ssim']:.3f}, "
              f"PSNR {privacy['psnr']:.2f} dB, Anderson-Darling {privacy['ad']:.1f} "
              f"(median {privacy['ad_median']:.1f}).",
              f"Protection: {protection['name']}, {protection['steps']} steps, "
              f"{protection['seconds_per_image']:.3f} s per image"
              + (f", constraint met for {100 * met:.1f}% of images." if met is not None else ".")]
    return "\n".join(lines) + "\n"
