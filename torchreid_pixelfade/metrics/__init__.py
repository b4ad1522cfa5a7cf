"""Evaluation metrics: re-id ranking (CMC / mAP / mINP) under a protocol, and image privacy
(SSIM / PSNR / AD)."""
from torchreid_pixelfade.metrics.privacy import anderson_darling, privacy_metrics, psnr, ssim
from torchreid_pixelfade.metrics.protocols import PROTOCOLS, Protocol, get_protocol
from torchreid_pixelfade.metrics.rank import RankResult, compute_distances, evaluate_rank

__all__ = [
    "evaluate_rank",
    "RankResult",
    "compute_distances",
    "get_protocol",
    "PROTOCOLS",
    "Protocol",
    "psnr",
    "ssim",
    "anderson_darling",
    "privacy_metrics",
]
