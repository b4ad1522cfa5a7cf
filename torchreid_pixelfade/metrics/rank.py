"""Vectorised re-identification ranking metrics (CMC, mAP, mINP).

Which gallery items each query is ranked against is a *protocol* (:mod:`.protocols`): a function
returning a boolean keep-mask per query chunk. The default, ``"market"``, is torchreid's
Market-1501 protocol (``torchreid/metrics/rank.py: eval_market1501``): for every query, gallery
items that share both its person id and its camera id are discarded. ``"none"`` (text-to-image),
``"sysu"`` and ``"regdb"`` are the others. Queries whose identity has no remaining gallery match
are skipped. On top of CMC and mAP this module reports mINP (Ye et al., "Deep Learning for
Person Re-identification: A Survey and Outlook", TPAMI 2021).

Unlike torchreid's pure-Python fallback, :func:`evaluate_rank` has no per-query Python loop: it
processes queries in chunks of rows with array operations, several chunks at once on
``torch.get_num_threads()`` threads. It never argsorts a whole row unless it must: the filtered
rank of a correct match is the number of kept gallery items strictly closer to the query, read
from the row's sorted distances by binary search; only rows where a match ties with another kept
item are argsorted, so ties are broken exactly as torchreid breaks them. Market-1501
(3368 x 15913) takes about 1 s on two threads, with memory bounded by the chunk size
(``tools/benchmark_ranking.py``).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from torchreid_pixelfade._torchreid import tr
from torchreid_pixelfade.metrics.protocols import Protocol, get_protocol

logger = logging.getLogger(__name__)

__all__ = ["RankResult", "evaluate_rank", "compute_distances", "auto_chunk_size"]

#: Working memory of one chunk (per thread) that the automatic chunk size keeps within: 32 MiB,
#: i.e. 64 Market-1501 query rows (G = 15,913) at float32.
CHUNK_BYTES = 32 * 2 ** 20
#: Worst-case bytes per distance of a chunk besides the distance itself (see auto_chunk_size).
_BYTES_PER_DISTANCE = 21
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


def _hit_positions(
    distmat: np.ndarray, keep: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """0-based position of each hit in its query's filtered ranking list, without an argsort.

    The position of a hit is the number of kept gallery items strictly closer than it, read off
    each row's sorted kept distances (a values-only sort, several times faster than an argsort).
    That equals the argsort's answer unless another kept item has exactly the hit's distance
    (or the distance is NaN); such rows are ranked again with the argsort itself
    (:func:`_argsort_positions`), so ties are broken exactly as in torchreid.

    Args:
        distmat: (C, G) distances.
        keep: (C, G) bool keep-mask of the protocol.
        rows, cols: (H,) row and gallery index of each hit (same pid and kept), rows ascending.

    Returns:
        (H,) int64 positions in [0, G).
    """
    masked = np.where(keep, distmat, np.inf)  # dtype: _sorted_dtype(distmat.dtype)
    masked.sort(axis=1)  # removed items (inf) are never strictly closer
    values = distmat[rows, cols].astype(masked.dtype, copy=False)
    below, equal = _count_closer(masked, rows, values)
    del masked
    tied = (equal != 1) | np.isnan(values)
    if tied.any():
        tied_rows = np.unique(rows[tied])
        redo = np.isin(rows, tied_rows)
        below[redo] = _argsort_positions(distmat[tied_rows], keep[tied_rows],
                                         np.searchsorted(tied_rows, rows[redo]), cols[redo])
    return below


def _count_closer(sorted_rows: np.ndarray, rows: np.ndarray, values: np.ndarray
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """For each ``values[k]``: how many entries of ``sorted_rows[rows[k]]`` are strictly smaller,
    and how many are equal to it (one batched binary search per side).

    Args:
        sorted_rows: (C, G) rows sorted ascending.
        rows: (H,) row of each value, ascending.
        values: (H,) values, of ``sorted_rows``' dtype.

    Returns:
        ``(below, equal)``, two (H,) int64 arrays.
    """
    starts = np.searchsorted(rows, np.arange(len(sorted_rows)))
    slot = np.arange(len(rows)) - starts[rows]  # index of the value within its row
    padded = np.zeros((len(sorted_rows), int(slot.max()) + 1), dtype=values.dtype)
    padded[rows, slot] = values
    table, queries = torch.from_numpy(sorted_rows), torch.from_numpy(padded)
    below = torch.searchsorted(table, queries).numpy()[rows, slot]
    not_above = torch.searchsorted(table, queries, right=True).numpy()[rows, slot]
    return below, not_above - below


def _argsort_positions(distmat: np.ndarray, keep: np.ndarray, rows: np.ndarray,
                       cols: np.ndarray) -> np.ndarray:
    """Filtered-list positions of hits from a full argsort of each row (ties as in torchreid).

    Args:
        distmat: (R, G) distances; keep: (R, G) keep-mask; rows, cols: (H,) hit indices.

    Returns:
        (H,) int64 positions.
    """
    order = np.argsort(distmat, axis=1)  # same call as torchreid -> same tie order
    ranked = np.cumsum(np.take_along_axis(keep, order, axis=1), axis=1, dtype=np.int32)
    ranked -= 1
    position = np.empty_like(ranked)
    np.put_along_axis(position, order, ranked, axis=1)  # back to gallery order
    return position[rows, cols].astype(np.int64)


def _stats_from_positions(num_rows: int, rows: np.ndarray, positions: np.ndarray
                          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-query validity, first-match rank, AP and INP from the positions of the hits.

    Args:
        num_rows: C, the number of queries.
        rows: (H,) query of each hit; positions: (H,) its 0-based filtered position.

    Returns:
        ``(valid, first, ap, inp)``, each (C,); see :func:`_chunk_stats`.
    """
    order = np.lexsort((positions, rows))  # each query's hits in ranking order
    rows, positions = rows[order], positions[order]
    num_rel = np.bincount(rows, minlength=num_rows)
    valid = num_rel > 0
    starts = np.cumsum(num_rel) - num_rel
    first, last = np.zeros(num_rows, np.int64), np.full(num_rows, -1, np.int64)
    first[valid] = positions[starts[valid]]
    last[valid] = positions[starts[valid] + num_rel[valid] - 1]
    # precision at each hit = (hits so far) / (filtered position + 1), summed per query
    cum_hits = np.arange(len(rows)) - starts[rows] + 1
    precision_sum = np.bincount(rows, weights=cum_hits / (positions + 1.0), minlength=num_rows)
    ap = np.where(valid, precision_sum / np.maximum(num_rel, 1), 0.0)
    inp = np.where(valid, num_rel / np.maximum(last + 1.0, 1.0), 0.0)
    return valid, first, ap, inp


def _sorted_dtype(dtype: np.dtype) -> np.dtype:
    """dtype of the sorted kept distances: floats keep theirs, integers become float64."""
    return np.result_type(dtype, np.float16) if np.issubdtype(dtype, np.floating) else np.dtype(
        np.float64)


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
    keep = _keep_mask(protocol, q_pids, g_pids, q_camids, g_camids)
    rows, cols = np.nonzero((q_pids[:, None] == g_pids[None, :]) & keep)
    if len(rows) == 0:
        positions = np.zeros(0, np.int64)
    else:
        positions = _hit_positions(distmat, keep, rows, cols)
    return _stats_from_positions(len(q_pids), rows, positions)


def auto_chunk_size(num_gallery: int, itemsize: int = 4,
                    budget_bytes: int = CHUNK_BYTES) -> int:
    """Query rows per chunk so that one chunk's working memory stays within ``budget_bytes``.

    A chunk of C rows needs at most about ``C * G * (itemsize + 21)`` bytes. The usual path holds
    the keep-mask, the hit mask and the protocol's temporary masks (1 byte each, at most 3 at a
    time) and the sorted kept distances (``itemsize``). Rows where a match ties with another
    kept item are argsorted instead, the worst case counted here: a copy of those rows
    (``itemsize``) and of their keep-mask (1), 8-byte indices and two 4-byte position arrays,
    besides the chunk's keep-mask (``itemsize + 18`` in all).

    Args:
        num_gallery: G, the gallery size (>= 1).
        itemsize: bytes per distance (4 for float32).
        budget_bytes: working memory allowed per chunk.

    Returns:
        The number of rows, >= 1.
    """
    return max(1, budget_bytes // (num_gallery * (itemsize + _BYTES_PER_DISTANCE)))


def _all_chunk_stats(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                     q_camids: np.ndarray, g_camids: np.ndarray, protocol: Protocol,
                     chunk_size: int, num_threads: int) -> list:
    """:func:`_chunk_stats` of every chunk, ``num_threads`` chunks at a time (numpy's sorts and
    comparisons release the GIL, so threads run them in parallel)."""
    def stats(start: int):
        end = start + chunk_size
        return _chunk_stats(distmat[start:end], q_pids[start:end], g_pids,
                            q_camids[start:end], g_camids, protocol)

    starts = range(0, len(q_pids), chunk_size)
    if num_threads <= 1 or len(starts) <= 1:
        return [stats(start) for start in starts]
    with ThreadPoolExecutor(max_workers=min(num_threads, len(starts))) as pool:
        return list(pool.map(stats, starts))


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    chunk_size: Optional[int] = None,
    protocol: Union[str, Protocol] = "market",
    num_threads: Optional[int] = None,
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
        chunk_size: Number of query rows processed at once; None picks
            :func:`auto_chunk_size` (a chunk's working memory within :data:`CHUNK_BYTES`).
            Memory above the inputs is at most about
            ``num_threads * chunk_size * G * (itemsize + 21)`` bytes. Does not change the result.
        protocol: A name registered in :data:`~.protocols.PROTOCOLS` (``"market"``, ``"none"``,
            ``"sysu"``, ``"regdb"``) or a callable
            ``(q_pids, g_pids, q_camids, g_camids) -> (Q, G) bool keep-mask``, called once per
            chunk with numpy arrays, possibly from several threads at once (it must not keep
            state). ``"sysu"`` expects SYSU-MM01's 1-based camera numbers.
        num_threads: Chunks processed in parallel; None = ``torch.get_num_threads()``. Does not
            change the result.

    Returns:
        A :class:`RankResult`; all fractions are in [0, 1].

    Raises:
        ValueError: On shape mismatches, ``max_rank < 1``, ``chunk_size < 1``,
            ``num_threads < 1``, an unknown protocol name, a keep-mask of the wrong shape, or if
            no query has a valid gallery match.
    """
    protocol_fn = get_protocol(protocol)
    distmat, q_pids, g_pids, q_camids, g_camids = _validate_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids)
    if max_rank < 1:
        raise ValueError(f"max_rank: expected >= 1, got {max_rank}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size: expected >= 1, got {chunk_size}")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads: expected >= 1, got {num_threads}")
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        logger.info("Gallery has only %d items; truncating CMC to rank %d", num_g, num_g)
        max_rank = num_g

    if chunk_size is None:
        chunk_size = auto_chunk_size(num_g, _sorted_dtype(distmat.dtype).itemsize)
    stats = _all_chunk_stats(distmat, q_pids, g_pids, q_camids, g_camids, protocol_fn,
                             chunk_size, num_threads or torch.get_num_threads())
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
