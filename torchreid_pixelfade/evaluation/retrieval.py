"""Ranking under each setting: distances (torchreid's metric, normalisation and re-ranking), then
CMC / mAP / mINP under a protocol."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from ..metrics import compute_distances, evaluate_rank
from .settings import IMAGE_SETTINGS, Setting, setting as as_setting


def setting_distances(query: torch.Tensor, gallery: torch.Tensor, metric: str = "euclidean",
                      normalize: bool = False, rerank: bool = False) -> np.ndarray:
    """Query-gallery distances ``(Q, G)``, with torchreid's optional k-reciprocal re-ranking."""
    distmat = compute_distances(query, gallery, metric, normalize)
    if rerank:
        from .._torchreid import tr

        distmat = tr.utils.re_ranking(distmat, compute_distances(query, query, metric, normalize),
                                      compute_distances(gallery, gallery, metric, normalize))
    return distmat


def evaluate_settings(query: Mapping[str, torch.Tensor], gallery: Mapping[str, torch.Tensor],
                      query_labels: tuple, gallery_labels: tuple,
                      settings: Sequence[Setting | str] = IMAGE_SETTINGS,
                      metric: str = "euclidean", normalize: bool = False,
                      ranks: Sequence[int] = (1, 5, 10), rerank: bool = False,
                      protocol="market") -> dict:
    """Rank-k, mAP and mINP of each setting.

    Args:
        query: features of each query form, e.g. ``{'original': (Q, D), 'protected': (Q, D)}``.
        gallery: the same for the gallery, ``(G, D)``.
        query_labels: ``(pids, camids)`` of the queries; ``gallery_labels`` of the gallery.
        settings: :class:`Setting` objects or names (``'P2P'``).
        metric: ``'euclidean'`` (squared) or ``'cosine'``, as torchreid's ``dist_metric``.
        normalize: L2-normalise features first (torchreid's ``normalize_feature``, default off).
        ranks: CMC ranks reported as ``rank{k}`` (1, 5 and 10 always are).
        rerank: torchreid's k-reciprocal re-ranking (``test.rerank``).
        protocol: which gallery entries each query may match (see ``metrics.protocols``).

    Returns:
        ``{setting name: {'rank1': ..., 'mAP': ..., 'mINP': ...}}``, fractions in [0, 1].
    """
    ranks = tuple(sorted({1, 5, 10, *ranks}))
    results = {}
    for item in map(as_setting, settings):
        distmat = setting_distances(query[item.query], gallery[item.gallery], metric, normalize,
                                    rerank)
        result = evaluate_rank(distmat, query_labels[0], gallery_labels[0], query_labels[1],
                               gallery_labels[1], protocol=protocol)
        results[item.name] = result.to_dict(ranks=ranks)
    return results
