"""The ``results.json`` / ``results.md`` of an evaluation, whichever path produced it."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from ..io import atomic_write_bytes, atomic_write_json
from ..metrics import privacy_metrics
from ..store import ProtectedFolder

COLUMNS = (("Rank-1", "rank1"), ("Rank-5", "rank5"), ("Rank-10", "rank10"), ("mAP", "mAP"),
           ("mINP", "mINP"))


def privacy_summary(protected: torch.Tensor, originals: torch.Tensor) -> dict:
    """Means of SSIM and PSNR (protected vs original) and of the Anderson-Darling statistic of
    ``(N, 3, H, W)`` pixel images in [0, 1]."""
    metrics = privacy_metrics(protected, originals)
    return {"ssim": float(np.mean(metrics["ssim"])), "psnr": float(np.mean(metrics["psnr"])),
            "ad": float(np.mean(metrics["ad"])), "ad_median": float(np.median(metrics["ad"]))}


@dataclasses.dataclass
class EvaluationResult:
    """Re-ID per setting, privacy and protection of one protected folder (``results.json``).

    Attributes:
        settings: ``{name: {'rank1', 'rank5', 'rank10', ..., 'mAP', 'mINP'}}``, fractions.
        privacy: ``{'ssim', 'psnr', 'ad', 'ad_median'}`` of the stored images.
        protection: ``ProtectedFolder.summary()``.
        num_query, num_gallery: sizes of the two sides.
        model, dataset: names; ``model`` is the model that extracted the features.
        protected_dir: the folder (set by the evaluation hook, whose folder is a cache).
        weights_sha256: SHA-256 of the weights file evaluated (set by the ``evaluate`` command).
    """

    settings: dict
    privacy: dict
    protection: dict
    num_query: int
    num_gallery: int
    model: str
    dataset: str
    protected_dir: str | None = None
    weights_sha256: str | None = None

    def to_dict(self) -> dict:
        """The ``results.json`` dictionary (optional fields only when set)."""
        data = dataclasses.asdict(self)
        return {k: v for k, v in data.items()
                if v is not None or k not in ("protected_dir", "weights_sha256")}

    def to_markdown(self) -> str:
        """A markdown table of the settings plus the privacy and protection lines."""
        lines = ["| setting | " + " | ".join(c for c, _ in COLUMNS) + " |",
                 "|---" * (len(COLUMNS) + 1) + "|"]
        for name, row in self.settings.items():
            values = [row.get(key, float("nan")) for _, key in COLUMNS]
            lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
        privacy, protection = self.privacy, self.protection
        met, missed = protection["constraint_met_fraction"], protection.get("constraint_missed")
        used = protection.get("steps_used_mean")
        lines += ["", f"Privacy (protected vs original, mean over {self.num_query} query + "
                  f"{self.num_gallery} gallery images): SSIM {privacy['ssim']:.3f}, "
                  f"PSNR {privacy['psnr']:.2f} dB, Anderson-Darling {privacy['ad']:.1f} "
                  f"(median {privacy['ad_median']:.1f}).",
                  f"Protection: {protection['name']}, {protection['steps']} steps"
                  + (f" ({used:.1f} used per image on average, at most "
                     f"{protection['steps_used_max']})" if used is not None else "")
                  + f", {protection['seconds_per_image']:.3f} s per image"
                  + (f", constraint met for {100 * met:.1f}% of images" if met is not None
                     else "")
                  + (f" ({missed} missed, listed in the manifest)" if missed else "") + "."]
        return "\n".join(lines) + "\n"

    def write(self, json_path: str) -> None:
        """Writes ``json_path`` and the markdown table beside it (``.md``), atomically."""
        atomic_write_json(json_path, self.to_dict())
        atomic_write_bytes(os.path.splitext(json_path)[0] + ".md", self.to_markdown().encode())


def folder_result(folder: ProtectedFolder, settings: dict, num_query: int, num_gallery: int,
                  model: str, dataset: str | None = None, protected_dir: str | None = None,
                  pairs: list | None = None) -> EvaluationResult:
    """The :class:`EvaluationResult` of ranked ``settings`` on ``folder``, evaluated by
    ``model`` (its name).

    Privacy is measured on the folder's stored query then gallery images against their
    originals; ``pairs`` (``[(protected, originals), ...]`` per split) saves reading them again.
    """
    if pairs is None:
        pairs = [folder.load_pairs(split) for split in ("query", "gallery")
                 if folder.entries(split)]
    protected = torch.cat([p for p, _ in pairs])
    originals = torch.cat([o for _, o in pairs])
    return EvaluationResult(settings=settings, privacy=privacy_summary(protected, originals),
                            protection=folder.summary(), num_query=num_query,
                            num_gallery=num_gallery, model=model,
                            dataset=dataset or folder.identity.dataset or folder.source_root,
                            protected_dir=protected_dir)


def results_markdown(results: dict | EvaluationResult) -> str:
    """Markdown of a result (object or ``results.json`` dictionary)."""
    if isinstance(results, dict):
        results = EvaluationResult(**results)
    return results.to_markdown()
