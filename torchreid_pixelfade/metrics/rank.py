"""Vectorised re-identification ranking metrics (CMC, mAP, mINP).

Which gallery items each query is ranked against is a *protocol* (:mod:`.protocols`): a function
returning a boolean keep-mask per query chunk. The default, ``"market"``, is torchreid's
Market-1501 protocol (``torchreid/metrics/rank.py: eval_market1501``): for every query, gallery
items that share both its person id and its camera id are discarded. ``"none"`` (text-to-image),
``"sysu"`` and ``"regdb"`` are the others. Queries whose identity has no remaining gallery match
are skipped. On top of CMC and mAP this module reports mINP (Ye et al., "Deep Learning for
Person Re-identification: A Survey and Outlook", TPAMI 2021).

Unlike torchreid's pure-Python fallback, :func:`evaluate_rank` has no per-query Python loop: it
processes queries in chunks of rows with array operations, which keeps Market-1501
(3368 x 15913) fast while bounding memory.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from torchreid_pixelfade._torchreid import tr
from torchreid_pixelfade.metrics.protocols import Protocol, get_protocol

logger = logging.getLogger(__name__)

__all__ = ["RankResult", "evaluate_rank", "compute_distances"]

DEFAULT_CHUNK_SIZE = 512
_METRICS = ("euclidean", "cosine")


@dataclass(frozen=True)
class RankResult:
    """Result of :func:`evaluate_rank`.

    Attributes:
        cmc: CMC curve, float64 array of length ``min(max_rank, num_gallery)``; ``cmc[k-1]`` is the
            fraction of valid queries whose first correct match is within the top ``k``. Values
            in [0, 1], non-decreasing.
        mAP: Mean average precision over valid queries, in [0, 1].
        mINP: Mean inverse negative penalty over valid queries, in [0, 1].
        num_valid_queries: Number of queries with at least one valid gallery match.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int

    def rank(self, k: int) -> float:
        """Rank-``k`` accuracy.

        Args:
            k: 1-based rank, ``k >= 1``. When ``k`` exceeds ``len(cmc)`` (tiny galleries) the last
                CMC value is returned instead of raising.

        Returns:
            The rank-``k`` accuracy as a python float in [0, 1].

        Raises:
            ValueError: If ``k < 1``.
        """
        if int(k) != k or k < 1:
            raise ValueError(f"rank k must be an integer >= 1, got {k!r}")
        return float(self.cmc[min(int(k), len(self.cmc)) - 1])

    def to_dict(self, ranks: Sequence[int] = (1, 5, 10)) -> Dict[str, float]:
        """Summarise as a flat dict of python floats in [0, 1].

        Args:
            ranks: 1-based ranks to report as ``"rank{k}"`` keys.

        Returns:
            ``{"rank1": .., "rank5": .., "rank10": .., "mAP": .., "mINP": ..}``.
        """
        out = {f"rank{k}": self.rank(k) for k in ranks}
        out["mAP"] = float(self.mAP)
        out["mINP"] = float(self.mINP)
        return out


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """Convert a numpy array, torch tensor or sequence to a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - defensive
        raise ValueError(f"{name}: expected an array or tensor, got {type(x).__name__}") from exc


def _validate_inputs(
    distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any
) -> Tuple[np.ndarray, ...]:
    """Convert to numpy and check that shapes agree; returns the five arrays."""
    distmat = _as_numpy(distmat, "distmat")
    if distmat.ndim != 2:
        raise ValueError(f"distmat: expected a 2-D (Q, G) matrix, got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat: expected non-empty (Q, G), got shape {distmat.shape}")
    arrays = [distmat]
    for name, arr, n in (
        ("q_pids", q_pids, num_q),
        ("g_pids", g_pids, num_g),
        ("q_camids", q_camids, num_q),
        ("g_camids", g_camids, num_g),
    ):
        arr = _as_numpy(arr, name)
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},) to match distmat {distmat.shape}, "
                             f"got {arr.shape}")
        arrays.append(arr)
    return tuple(arrays)


def _keep_mask(
    protocol: Protocol,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
) -> np.ndarray:
    """Calls ``protocol`` on one chunk and checks that it returned a ``(C, G)`` mask."""
    keep = _as_numpy(protocol(q_pids, g_pids, q_camids, g_camids), "protocol keep-mask")
    expected = (len(q_pids), len(g_pids))
    if keep.shape != expected:
        raise ValueError(f"protocol {_protocol_name(protocol)}: expected a keep-mask of shape "
                         f"{expected}, got {keep.shape}")
    return keep.astype(bool, copy=False)


def _chunk_stats(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    protocol: Protocol,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-query statistics for one chunk of query rows.

    Args:
        distmat: (C, G) distances of C queries to the gallery.
        q_pids, q_camids: (C,) query ids / cameras.
        g_pids, g_camids: (G,) gallery ids / cameras.
        protocol: keep-mask function (:mod:`.protocols`), called on this chunk.

    Returns:
        ``(valid, first, ap, inp)``, each of shape (C,): whether the query has a valid match, the
        0-based filtered rank of its first match (only meaningful where valid), its AP and INP
        (0 where not valid).
    """
    indices = np.argsort(distmat, axis=1)  # same call as torchreid -> same tie order
    same_pid = g_pids[indices] == q_pids[:, None]
    # keep-mask in gallery order, permuted into each query's ranking order
    keep = np.take_along_axis(_keep_mask(protocol, q_pids, g_pids, q_camids, g_camids), indices,
                              axis=1)
    hits = same_pid & keep
    # 0-based position of each kept item in the filtered ranking list
    pos = np.cumsum(keep, axis=1, dtype=np.int32) - 1
    num_rel = hits.sum(axis=1)
    valid = num_rel > 0
    rows = np.arange(len(indices))
    first = pos[rows, np.argmax(hits, axis=1)]
    last = np.where(hits, pos, -1).max(axis=1)
    # precision at each hit = (hits so far) / (filtered position + 1), summed per query
    hit_rows, hit_cols = np.nonzero(hits)
    cum_hits = np.cumsum(hits, axis=1, dtype=np.int32)[hit_rows, hit_cols]
    precision = cum_hits / (pos[hit_rows, hit_cols] + 1.0)
    precision_sum = np.bincount(hit_rows, weights=precision, minlength=len(indices))
    ap = np.where(valid, precision_sum / np.maximum(num_rel, 1), 0.0)
    inp = np.where(valid, num_rel / np.maximum(last + 1.0, 1.0), 0.0)
    return valid, first, ap, inp


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    protocol: Union[str, Protocol] = "market",
) -> RankResult:
    """CMC / mAP / mINP under an evaluation protocol, vectorised over queries.

    For each query, the gallery items the protocol's keep-mask rejects are removed from its
    ranking list; queries with no remaining match are skipped. With the default ``"market"``
    protocol (gallery items sharing both pid and camid with the query are removed) this equals
    ``torchreid.metrics.evaluate_rank(..., use_metric_cuhk03=False)`` for CMC and mAP (up to float
    rounding), but never raises ``IndexError`` for small galleries.

    Args:
        distmat: (Q, G) distances, numpy array or torch tensor; smaller means more similar.
        q_pids: (Q,) query person ids (integers).
        g_pids: (G,) gallery person ids.
        q_camids: (Q,) query camera ids.
        g_camids: (G,) gallery camera ids.
        max_rank: Length of the CMC curve; truncated to ``G`` if the gallery is smaller.
        chunk_size: Number of query rows processed at once (bounds memory to roughly
            ``chunk_size * G * 30`` bytes). Does not change the result.
        protocol: A name registered in :data:`~.protocols.PROTOCOLS` (``"market"``, ``"none"``,
            ``"sysu"``, ``"regdb"``) or a callable
            ``(q_pids, g_pids, q_camids, g_camids) -> (Q, G) bool keep-mask``, called once per
            chunk with numpy arrays. ``"sysu"`` expects SYSU-MM01's 1-based camera numbers.

    Returns:
        A :class:`RankResult`; all fractions are in [0, 1].

    Raises:
        ValueError: On shape mismatches, ``max_rank < 1``, ``chunk_size < 1``, an unknown
            protocol name, a keep-mask of the wrong shape, or if no query has a valid gallery
            match.
    """
    protocol_fn = get_protocol(protocol)
    distmat, q_pids, g_pids, q_camids, g_camids = _validate_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids)
    if max_rank < 1:
        raise ValueError(f"max_rank: expected >= 1, got {max_rank}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected >= 1, got {chunk_size}")
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        logger.info("Gallery has only %d items; truncating CMC to rank %d", num_g, num_g)
        max_rank = num_g

    stats = [
        _chunk_stats(distmat[s:s + chunk_size], q_pids[s:s + chunk_size], g_pids,
                     q_camids[s:s + chunk_size], g_camids, protocol_fn)
        for s in range(0, num_q, chunk_size)
    ]
    valid, first, ap, inp = (np.concatenate(parts) for parts in zip(*stats))
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"No valid query: none of the {num_q} queries has a gallery match with the same pid "
            f"kept by the {_protocol_name(protocol)} protocol (expected at least one)")
    if num_valid < num_q:
        logger.debug("%d of %d queries have no valid gallery match and are skipped",
                     num_q - num_valid, num_q)
    first_valid = first[valid]
    cmc = (first_valid[None, :] <= np.arange(max_rank)[:, None]).sum(axis=1) / num_valid
    return RankResult(
        cmc=cmc.astype(np.float64),
        mAP=float(ap[valid].mean()),
        mINP=float(inp[valid].mean()),
        num_valid_queries=num_valid,
    )


def _protocol_name(protocol: Union[str, Protocol]) -> str:
    """A short name of a protocol for messages."""
    if isinstance(protocol, str):
        return repr(protocol)
    return repr(getattr(protocol, "__name__", type(protocol).__name__))


def _as_feature_tensor(x: Any, name: str) -> torch.Tensor:
    """Convert features to a 2-D float32 CPU tensor."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D (N, D) feature matrix, got shape "
                         f"{tuple(t.shape)}")
    return t.float().cpu()


def compute_distances(
    qf: Any, gf: Any, metric: str = "euclidean", normalize: bool = False
) -> np.ndarray:
    """Query-gallery distance matrix via torchreid.

    Args:
        qf: (Q, D) query features, numpy array or torch tensor.
        gf: (G, D) gallery features.
        metric: ``"euclidean"`` (squared Euclidean distance, >= 0) or ``"cosine"``
            (``1 - cos``, in [0, 2]).
        normalize: L2-normalise each feature vector before computing distances.

    Returns:
        (Q, G) float32 numpy array of distances.

    Raises:
        ValueError: For non-2-D features, mismatched feature dims or an unknown metric.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric: expected one of {_METRICS}, got {metric!r}")
    qf = _as_feature_tensor(qf, "qf")
    gf = _as_feature_tensor(gf, "gf")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"Feature dims differ: qf has D={qf.shape[1]}, gf has D={gf.shape[1]}")
    if normalize:
        qf = F.normalize(qf, p=2, dim=1)
        gf = F.normalize(gf, p=2, dim=1)
    with torch.no_grad():
        distmat = tr.metrics.compute_distance_matrix(qf, gf, metric=metric)
    return distmat.numpy()
