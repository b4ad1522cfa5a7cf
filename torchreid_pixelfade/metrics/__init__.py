"""Evaluation metrics: re-id ranking (CMC / mAP / mINP) and image privacy (SSIM / PSNR / AD)."""
from torchreid_pixelfade.metrics.privacy import anderson_darling, privacy_metrics, psnr, ssim
from torchreid_pixelfade.metrics.rank import RankResult, compute_distances, evaluate_rank

__all__ = [
    "evaluate_rank",
    "RankResult",
    "compute_distances",
    "psnr",
    "ssim",
    "anderson_darling",
    "privacy_metrics",
]
