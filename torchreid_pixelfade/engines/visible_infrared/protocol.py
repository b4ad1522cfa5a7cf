"""Visible-infrared (VI) re-id evaluation protocols for SYSU-MM01 and RegDB, as pure functions.

Nothing here reads images: inputs are per-image labels (person id, camera number, and through
the camera the modality), lists of items (paths or indices) and feature matrices.

**Official** (what the published numbers use):

* SYSU-MM01 test sets (wuancong/SYSU-MM01 ``evaluation/*.m``; AGW, mangye16/Cross-Modal-Re-ID-
  baseline ``data_manager.py``): the query is every infrared (IR) image of cameras 3 and 6 of
  the test ids; the gallery is drawn from the RGB cameras (1, 2, 4, 5 for ``"all"``-search, 1, 2
  for ``"indoor"``-search), one random image per (id, camera) for single-shot, ten for
  multi-shot. :func:`sample_sysu_gallery` reproduces **AGW's single-shot draw exactly** (its
  ``random.seed(trial)`` then ``random.choice(sorted files)`` per sorted id and camera), given the
  same sorted file lists; the official MATLAB trials use fixed permutations
  (``rand_perm_cam.mat``) that are not reproduced. AGW has no multi-shot; ours draws ``min(10,
  n)`` images per (id, camera) with the same generator.
* SYSU-MM01 metric (:func:`evaluate_sysu`, direction ``"ir_to_rgb"``): for a camera-3 query
  every camera-2 gallery image is removed, whatever its identity (same room); the CMC is over
  the ranked list **de-duplicated by identity** (first occurrence kept), mAP and mINP over the
  filtered, non-deduplicated list. Equal to AGW's ``eval_sysu`` and the official
  ``get_cmc_multi_cam.m`` / ``get_map_multi_cam.m``.
* RegDB (:func:`evaluate_regdb`): nothing removed, standard CMC / mAP / mINP (AGW
  ``eval_regdb``), visible query -> thermal gallery by default, thermal -> visible with AGW's
  ``--tvsearch`` (the same two sets with their roles swapped); trials 1..10.

**Ours** (not defined by the official protocol): the reversed SYSU direction ``"rgb_to_ir"``
(an RGB query searches the IR images, which is what PixelFade protects). Its test sets are the
official ones with the roles swapped (query = the trial's sampled RGB images, gallery = every IR
image), and the removal rule is mirrored: for a camera-2 query every camera-3 gallery image is
removed; the CMC is again identity-unique.

Ranking ties are ordered by ``np.argsort``'s default, exactly as AGW (and
:func:`~torchreid_pixelfade.metrics.evaluate_rank`) does.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence,
                    Tuple)

import numpy as np
import torch

from torchreid_pixelfade.metrics import RankResult, evaluate_rank
from torchreid_pixelfade.metrics.protocols import (SYSU_IR_INDOOR_CAM, SYSU_RGB_INDOOR_CAM,
                                                   Protocol, keep_all, sysu)

__all__ = [
    "IR_TO_RGB", "RGB_TO_IR", "DIRECTIONS", "SYSU_RGB_CAMS", "SYSU_IR_CAMS", "SYSU_SHOTS",
    "SYSU_TRIALS", "REGDB_TRIALS", "REPORT_RANKS", "MAX_RANK",
    "sysu_trial_seed", "group_by_camera", "sysu_query", "sample_sysu_gallery", "sysu_split",
    "sysu_split_indices", "sysu_reverse", "sysu_keep_mask", "evaluate_sysu", "evaluate_regdb",
    "agw_distance", "TrialSummary", "run_trials", "evaluate_sysu_trials", "regdb_trial",
]

#: ``(item, pid, camid)``: ``item`` is whatever the file lists hold (a path, an index).
Record = Tuple[Any, int, int]
#: ``files[camid][pid] -> items of that (camera, id)``, in sorted file order.
FilesByCamera = Mapping[int, Mapping[int, Sequence[Any]]]

#: Search directions. ``"ir_to_rgb"``: infrared query, RGB / visible gallery (SYSU's official
#: direction, RegDB's ``--tvsearch``). ``"rgb_to_ir"``: RGB / visible query, infrared gallery
#: (RegDB's default; reversed SYSU, ours).
IR_TO_RGB = "ir_to_rgb"
RGB_TO_IR = "rgb_to_ir"
DIRECTIONS = (IR_TO_RGB, RGB_TO_IR)

#: SYSU-MM01 RGB (gallery) cameras per search mode and IR (query) cameras, 1-based camera
#: numbers (folders ``cam1`` .. ``cam6``). Indoor search keeps both IR cameras as queries.
SYSU_RGB_CAMS: Dict[str, Tuple[int, ...]] = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
SYSU_IR_CAMS: Tuple[int, ...] = (3, 6)
#: Gallery images per (id, RGB camera).
SYSU_SHOTS: Dict[str, int] = {"single": 1, "multi": 10}

#: Trial numbers: SYSU gallery draws 0..9 (AGW ``test.py``), RegDB splits 1..10.
SYSU_TRIALS: Tuple[int, ...] = tuple(range(10))
REGDB_TRIALS: Tuple[int, ...] = tuple(range(1, 11))
#: Ranks reported (AGW ``test.py``) and the CMC length (AGW's ``max_rank``).
REPORT_RANKS: Tuple[int, ...] = (1, 5, 10, 20)
MAX_RANK = 20


# --------------------------------------------------------------------------- SYSU test sets


def _check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")


def sysu_trial_seed(trial: int) -> int:
    """Seed of SYSU-MM01 gallery trial ``trial``: the trial number itself, as AGW's
    ``process_gallery_sysu`` (``random.seed(trial)``, trials 0..9).

    Args:
        trial: trial number, an integer >= 0.

    Returns:
        The seed for :class:`random.Random`.
    """
    if int(trial) != trial or trial < 0:
        raise ValueError(f"trial: expected an integer >= 0, got {trial!r}")
    return int(trial)


def _selected_pids(files: FilesByCamera, test_ids: Optional[Iterable[int]]) -> List[int]:
    """Sorted person ids to iterate: ``test_ids`` or every id found in ``files``."""
    if test_ids is not None:
        return sorted({int(p) for p in test_ids})
    return sorted({int(p) for by_pid in files.values() for p in by_pid})


def _records_by_id(files: FilesByCamera, cams: Sequence[int], pids: Sequence[int],
                   pick: Callable[[Sequence[Any]], Sequence[Any]]) -> List[Record]:
    """AGW order: for each id (ascending), for each camera in ``cams``, ``pick(items)``.

    (id, camera) pairs without items are skipped and consume no random draw, like AGW's
    ``os.path.isdir`` test.
    """
    records: List[Record] = []
    for pid in pids:
        for cam in cams:
            items = files.get(cam, {}).get(pid, ())
            if len(items) > 0:
                records.extend((item, pid, cam) for item in pick(items))
    return records


def sysu_query(files: FilesByCamera, test_ids: Optional[Iterable[int]] = None) -> List[Record]:
    """SYSU-MM01 infrared query set: every image of cameras 3 and 6 of the test ids (official,
    both search modes).

    Args:
        files: ``files[camid][pid]`` -> items of that camera and id in sorted file order
            (camera numbers 1..6; other cameras are ignored).
        test_ids: ids to use; default every id in ``files``.

    Returns:
        ``[(item, pid, camid), ...]`` ordered by id, then camera (3, 6), then file order, as
        AGW's ``process_query_sysu``.
    """
    return _records_by_id(files, SYSU_IR_CAMS, _selected_pids(files, test_ids), list)


def sample_sysu_gallery(files: FilesByCamera, trial: int, mode: str = "all",
                        shot: str = "single",
                        test_ids: Optional[Iterable[int]] = None) -> List[Record]:
    """SYSU-MM01 RGB gallery of one trial.

    Single-shot is AGW's draw exactly: ``random.Random(trial)``, then for each id (ascending)
    and each RGB camera of ``mode`` with images, ``choice(items)``. Multi-shot (ours; AGW has
    none, the official one uses ``rand_perm_cam.mat``) draws ``sample(items, min(10, n))`` with
    the same generator and keeps the drawn items in file order. The same arguments always give
    the same gallery.

    Args:
        files: ``files[camid][pid]`` -> items in sorted file order, camera numbers 1..6.
        trial: trial number >= 0 (seed, :func:`sysu_trial_seed`).
        mode: ``"all"`` (cameras 1, 2, 4, 5) or ``"indoor"`` (cameras 1, 2).
        shot: ``"single"`` (1 image per id and camera) or ``"multi"`` (10).
        test_ids: ids to use; default every id in ``files``.

    Returns:
        ``[(item, pid, camid), ...]`` ordered by id, then camera, as AGW's
        ``process_gallery_sysu``.
    """
    _check_choice("mode", mode, SYSU_RGB_CAMS)
    _check_choice("shot", shot, SYSU_SHOTS)
    rng = random.Random(sysu_trial_seed(trial))
    num = SYSU_SHOTS[shot]

    def pick(items: Sequence[Any]) -> Sequence[Any]:
        if num == 1:
            return [rng.choice(items)]
        chosen = rng.sample(range(len(items)), min(num, len(items)))
        return [items[i] for i in sorted(chosen)]

    return _records_by_id(files, SYSU_RGB_CAMS[mode], _selected_pids(files, test_ids), pick)


def sysu_split(files: FilesByCamera, trial: int, mode: str = "all", shot: str = "single",
               direction: str = IR_TO_RGB, test_ids: Optional[Iterable[int]] = None
               ) -> Tuple[List[Record], List[Record]]:
    """Query and gallery records of one SYSU-MM01 trial in a search direction.

    Args:
        files, trial, mode, shot, test_ids: as :func:`sample_sysu_gallery`.
        direction: ``"ir_to_rgb"`` (official: IR query, sampled RGB gallery) or ``"rgb_to_ir"``
            (ours: the same two sets with roles swapped, so only the query depends on the
            trial).

    Returns:
        ``(query, gallery)`` lists of ``(item, pid, camid)``.
    """
    _check_choice("direction", direction, DIRECTIONS)
    ir = sysu_query(files, test_ids)
    rgb = sample_sysu_gallery(files, trial, mode, shot, test_ids)
    return (ir, rgb) if direction == IR_TO_RGB else (rgb, ir)


def group_by_camera(pids: Any, camids: Any) -> Dict[int, Dict[int, List[int]]]:
    """Index lists per camera and id, in input order: ``out[camid][pid] -> [i, ...]``.

    With images given in sorted path order per (camera, id), :func:`sample_sysu_gallery` on this
    grouping draws the same images as on the paths.

    Args:
        pids: (N,) integer person ids.
        camids: (N,) integer camera numbers.

    Returns:
        Nested dict of python ``int`` indices into the input arrays.
    """
    pids, camids = np.asarray(pids), np.asarray(camids)
    if pids.shape != camids.shape or pids.ndim != 1:
        raise ValueError(f"pids, camids: expected equal 1-D shapes, got {pids.shape} and "
                         f"{camids.shape}")
    out: Dict[int, Dict[int, List[int]]] = {}
    for i, (pid, cam) in enumerate(zip(pids.tolist(), camids.tolist(), strict=True)):
        out.setdefault(int(cam), {}).setdefault(int(pid), []).append(i)
    return out


def sysu_split_indices(pids: Any, camids: Any, trial: int, mode: str = "all",
                       shot: str = "single", direction: str = IR_TO_RGB
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`sysu_split` on per-image labels: indices of the query and gallery images.

    Args:
        pids: (N,) person ids of all test images (both modalities).
        camids: (N,) SYSU camera numbers 1..6.
        trial, mode, shot, direction: as :func:`sysu_split`.

    Returns:
        ``(query_idx, gallery_idx)``, int64 arrays of indices into the inputs.
    """
    query, gallery = sysu_split(group_by_camera(pids, camids), trial, mode, shot, direction)
    return (np.array([r[0] for r in query], dtype=np.int64),
            np.array([r[0] for r in gallery], dtype=np.int64))


# --------------------------------------------------------------------------- metrics


def sysu_reverse(q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any) -> np.ndarray:
    """Keep-mask of the reversed SYSU direction (ours): a camera-2 RGB query is not ranked
    against camera-3 IR gallery images, whatever their identity (mirror of the official rule).

    Args:
        q_pids, q_camids: (Q,) query ids and camera numbers 1..6.
        g_pids, g_camids: (G,) gallery ids and camera numbers.

    Returns:
        (Q, G) boolean keep-mask.
    """
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    return ~((q_camids[:, None] == SYSU_RGB_INDOOR_CAM)
             & (g_camids[None, :] == SYSU_IR_INDOOR_CAM))


def sysu_keep_mask(direction: str = IR_TO_RGB) -> Protocol:
    """The SYSU removal rule (keep-mask protocol) of a search direction.

    Args:
        direction: ``"ir_to_rgb"`` or ``"rgb_to_ir"``.

    Returns:
        The official :func:`torchreid_pixelfade.metrics.protocols.sysu` for ``"ir_to_rgb"``,
        :func:`sysu_reverse` (ours) for ``"rgb_to_ir"``.
    """
    _check_choice("direction", direction, DIRECTIONS)
    return sysu if direction == IR_TO_RGB else sysu_reverse


def _check_sysu_cameras(q_camids: np.ndarray, g_camids: np.ndarray, direction: str) -> None:
    """Reject camera numbers that do not fit the direction (e.g. 0-based camera ids)."""
    q_cams, g_cams = ((SYSU_IR_CAMS, SYSU_RGB_CAMS["all"]) if direction == IR_TO_RGB
                      else (SYSU_RGB_CAMS["all"], SYSU_IR_CAMS))
    for name, cams, allowed in (("q_camids", q_camids, q_cams), ("g_camids", g_camids, g_cams)):
        bad = np.setdiff1d(cams, allowed)
        if bad.size:
            raise ValueError(f"{name}: direction {direction!r} expects SYSU camera numbers in "
                             f"{allowed}, got {bad.tolist()}")


def _unique_first_rank(distmat: np.ndarray, q_idx: np.ndarray, keep: np.ndarray,
                       by_pid: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Identity-unique rank of the first true match for a chunk of queries.

    Args:
        distmat: (C, G) distances.
        q_idx: (C,) index of each query's id among the sorted unique gallery ids, -1 if absent.
        keep: (C, G) keep-mask in gallery order.
        by_pid: (G,) gallery columns sorted by id (stable); ``starts``: (P,) group starts.

    Returns:
        (C,) 0-based rank of the query's id in its kept, identity-deduplicated ranking list
        (the number of other ids whose first kept image ranks before its first kept match),
        or -1 where no kept gallery image has the query's id.
    """
    num_c, num_g = distmat.shape
    order = np.argsort(distmat, axis=1)  # AGW's call: same tie order
    pos = np.empty_like(order)
    np.put_along_axis(pos, order, np.broadcast_to(np.arange(num_g), order.shape), axis=1)
    pos = np.where(keep, pos, num_g)[:, by_pid]
    first = np.minimum.reduceat(pos, starts, axis=1)  # (C, P) first kept position of each id
    hit = np.where(q_idx >= 0, first[np.arange(num_c), np.maximum(q_idx, 0)], num_g)
    rank = (first < hit[:, None]).sum(axis=1)
    return np.where(hit < num_g, rank, -1)


def _unique_cmc(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                keep_fn: Callable[..., Any], q_camids: np.ndarray, g_camids: np.ndarray,
                max_rank: int, chunk_size: int) -> Tuple[np.ndarray, int]:
    """Identity-unique CMC over the valid queries, and their number."""
    uniq, g_idx = np.unique(g_pids, return_inverse=True)
    by_pid = np.argsort(g_idx, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(g_idx[by_pid]) != 0])
    q_idx = np.searchsorted(uniq, q_pids).clip(max=len(uniq) - 1)
    q_idx = np.where(uniq[q_idx] == q_pids, q_idx, -1)
    ranks = np.concatenate([
        _unique_first_rank(distmat[s:s + chunk_size], q_idx[s:s + chunk_size],
                           np.asarray(keep_fn(q_pids[s:s + chunk_size], g_pids,
                                              q_camids[s:s + chunk_size], g_camids), bool),
                           by_pid, starts)
        for s in range(0, len(q_pids), chunk_size)])
    valid = ranks[ranks >= 0]
    length = min(max_rank, len(uniq))
    cmc = (valid[None, :] <= np.arange(length)[:, None]).sum(axis=1) / max(len(valid), 1)
    return cmc.astype(np.float64), len(valid)


def _as_array(x: Any) -> np.ndarray:
    """Numpy view of an array, tensor or sequence."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def evaluate_sysu(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any,
                  direction: str = IR_TO_RGB, max_rank: int = MAX_RANK,
                  chunk_size: int = 512) -> RankResult:
    """SYSU-MM01 evaluation: identity-unique CMC, mAP and mINP after the same-room removal.

    ``"ir_to_rgb"`` is official (AGW ``eval_sysu``, ``get_cmc_multi_cam.m`` /
    ``get_map_multi_cam.m``): for a camera-3 query every camera-2 gallery image is removed. The
    CMC counts each gallery identity once, at its first kept position; mAP and mINP (AGW's
    ``num_matches / (last match position + 1)``) use the whole kept list. Queries without a kept
    match are skipped. ``"rgb_to_ir"`` (ours) removes camera-3 gallery images for a camera-2
    query, and is otherwise the same.

    Args:
        distmat: (Q, G) distances (numpy or torch); smaller is more similar. AGW passes
            ``-q @ g.T`` of L2-normalised features (:func:`agw_distance`).
        q_pids, g_pids: (Q,) and (G,) integer person ids.
        q_camids, g_camids: (Q,) and (G,) SYSU camera numbers 1..6 (IR 3, 6; RGB 1, 2, 4, 5),
            checked against the direction.
        direction: ``"ir_to_rgb"`` (official) or ``"rgb_to_ir"`` (ours).
        max_rank: CMC length, truncated to the number of distinct gallery ids (as the official
            code); a query's CMC stays at its last value past the end of its own list.
        chunk_size: query rows processed at once; does not change the result.

    Returns:
        :class:`~torchreid_pixelfade.metrics.RankResult`; ``cmc`` is identity-unique, all
        values are fractions in [0, 1].

    Raises:
        ValueError: on bad shapes, cameras that do not fit ``direction``, or no valid query.
    """
    _check_choice("direction", direction, DIRECTIONS)
    keep_fn = sysu_keep_mask(direction)
    distmat, q_pids, g_pids, q_camids, g_camids = (
        _as_array(a) for a in (distmat, q_pids, g_pids, q_camids, g_camids))
    _check_sysu_cameras(q_camids, g_camids, direction)
    # mAP / mINP on the kept, non-deduplicated lists; evaluate_rank also validates the shapes
    # and raises when no query is valid (its valid queries are the ones counted below)
    base = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank,
                         chunk_size=chunk_size, protocol=keep_fn)
    cmc, num_valid = _unique_cmc(distmat, q_pids, g_pids, keep_fn, q_camids, g_camids,
                                 max_rank, chunk_size)
    return RankResult(cmc=cmc, mAP=base.mAP, mINP=base.mINP, num_valid_queries=num_valid)


def evaluate_regdb(distmat: Any, q_pids: Any, g_pids: Any, max_rank: int = MAX_RANK,
                   chunk_size: int = 512) -> RankResult:
    """RegDB evaluation (official, AGW ``eval_regdb``): nothing removed, standard CMC, mAP, mINP.

    Either direction: pass the visible x thermal (default) or thermal x visible distances.

    Args:
        distmat: (Q, G) distances, smaller is more similar.
        q_pids, g_pids: (Q,) and (G,) integer labels of the trial's test lists.
        max_rank: CMC length, truncated to ``G``.
        chunk_size: query rows processed at once.

    Returns:
        :class:`~torchreid_pixelfade.metrics.RankResult` with fractions in [0, 1].
    """
    num_q, num_g = np.shape(distmat)
    return evaluate_rank(distmat, q_pids, g_pids, np.ones(num_q, np.int64),
                         2 * np.ones(num_g, np.int64), max_rank=max_rank,
                         chunk_size=chunk_size, protocol=keep_all)


def agw_distance(qf: Any, gf: Any) -> np.ndarray:
    """AGW's test distance ``-(qf @ gf.T)``; with L2-normalised features, ranks as cosine.

    Args:
        qf: (Q, D) query features (numpy or torch). AGW's eval features are L2-normalised.
        gf: (G, D) gallery features.

    Returns:
        (Q, G) float32 array, smaller is more similar (in [-1, 1] for unit features).
    """
    qf = _as_array(qf).astype(np.float32, copy=False)
    gf = _as_array(gf).astype(np.float32, copy=False)
    if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1]:
        raise ValueError(f"qf, gf: expected (Q, D) and (G, D), got {qf.shape} and {gf.shape}")
    return -(qf @ gf.T)


# --------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class TrialSummary:
    """Per-trial results and their average.

    Attributes:
        trials: the trial numbers, in order.
        results: one :class:`~torchreid_pixelfade.metrics.RankResult` per trial.
    """

    trials: Tuple[int, ...]
    results: Tuple[RankResult, ...]

    def per_trial(self, ranks: Sequence[int] = REPORT_RANKS) -> List[Dict[str, float]]:
        """One ``{"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}`` dict per trial.

        Args:
            ranks: 1-based ranks reported as ``"rank<k>"``.

        Returns:
            A list of dicts of fractions in [0, 1], in trial order.
        """
        return [r.to_dict(ranks) for r in self.results]

    def mean(self, ranks: Sequence[int] = REPORT_RANKS) -> Dict[str, float]:
        """Average over trials of each value of :meth:`per_trial`.

        AGW averages the CMC curves, mAP and mINP over its 10 trials: the same numbers.

        Args:
            ranks: 1-based ranks reported as ``"rank<k>"``.

        Returns:
            ``{"rank1": .., "rank5": .., "rank10": .., "rank20": .., "mAP": .., "mINP": ..}``,
            fractions in [0, 1].
        """
        rows = self.per_trial(ranks)
        return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def run_trials(evaluate_trial: Callable[[int], RankResult],
               trials: Sequence[int] = SYSU_TRIALS) -> TrialSummary:
    """Evaluate every trial and collect the results.

    Args:
        evaluate_trial: ``trial -> RankResult`` (e.g. extract features of the trial's gallery
            and call :func:`evaluate_sysu`, or load the trial's model for RegDB).
        trials: trial numbers; :data:`SYSU_TRIALS` (0..9) or :data:`REGDB_TRIALS` (1..10).

    Returns:
        A :class:`TrialSummary`.
    """
    trials = tuple(int(t) for t in trials)
    if not trials:
        raise ValueError("trials: expected at least one trial")
    return TrialSummary(trials, tuple(evaluate_trial(t) for t in trials))


def evaluate_sysu_trials(ir_feats: Any, ir_pids: Any, ir_camids: Any, rgb_feats: Any,
                         rgb_pids: Any, rgb_camids: Any, mode: str = "all",
                         shot: str = "single", direction: str = IR_TO_RGB,
                         trials: Sequence[int] = SYSU_TRIALS,
                         distance: Callable[[Any, Any], Any] = agw_distance,
                         max_rank: int = MAX_RANK) -> TrialSummary:
    """SYSU-MM01 trials from precomputed features of every test image.

    Each trial draws the RGB gallery (:func:`sample_sysu_gallery` on the RGB labels, so give the
    RGB images in sorted path order per camera and id to reproduce AGW) and evaluates the IR
    query set against it (``"ir_to_rgb"``) or the drawn RGB images against all IR images
    (``"rgb_to_ir"``).

    Args:
        ir_feats: (N_ir, D) features of all IR test images (cameras 3, 6) -- the query set.
        ir_pids, ir_camids: (N_ir,) ids and camera numbers.
        rgb_feats: (N_rgb, D) features of all RGB test images (every candidate).
        rgb_pids, rgb_camids: (N_rgb,) ids and camera numbers 1, 2, 4, 5.
        mode, shot, direction: as :func:`sysu_split`.
        trials: trial numbers (seeds), default 0..9.
        distance: ``(qf, gf) -> (Q, G)`` distances; default AGW's :func:`agw_distance`.
        max_rank: CMC length.

    Returns:
        A :class:`TrialSummary`.
    """
    _check_choice("direction", direction, DIRECTIONS)
    ir_pids, ir_camids = _as_array(ir_pids), _as_array(ir_camids)
    rgb_pids, rgb_camids = _as_array(rgb_pids), _as_array(rgb_camids)
    groups = group_by_camera(rgb_pids, rgb_camids)

    def one(trial: int) -> RankResult:
        idx = np.array([r[0] for r in sample_sysu_gallery(groups, trial, mode, shot)], np.int64)
        rgb = (_as_array(rgb_feats)[idx], rgb_pids[idx], rgb_camids[idx])
        ir = (ir_feats, ir_pids, ir_camids)
        (qf, qp, qc), (gf, gp, gc) = (ir, rgb) if direction == IR_TO_RGB else (rgb, ir)
        return evaluate_sysu(distance(qf, gf), qp, gp, qc, gc, direction, max_rank)

    return run_trials(one, trials)


def regdb_trial(visible_feats: Any, visible_pids: Any, thermal_feats: Any, thermal_pids: Any,
                direction: str = RGB_TO_IR,
                distance: Callable[[Any, Any], Any] = agw_distance,
                max_rank: int = MAX_RANK) -> RankResult:
    """One RegDB trial from the features of its two test lists (official, AGW ``test.py``).

    Args:
        visible_feats: (N_v, D) features of ``test_visible_<trial>``; ``visible_pids`` (N_v,).
        thermal_feats: (N_t, D) features of ``test_thermal_<trial>``; ``thermal_pids`` (N_t,).
        direction: ``"rgb_to_ir"`` (visible query -> thermal gallery, AGW's default) or
            ``"ir_to_rgb"`` (thermal -> visible, AGW's ``--tvsearch``).
        distance: ``(qf, gf) -> (Q, G)`` distances; default :func:`agw_distance`.
        max_rank: CMC length.

    Returns:
        :class:`~torchreid_pixelfade.metrics.RankResult`. Average trials 1..10 with
        ``run_trials(lambda t: regdb_trial(...features of trial t...), REGDB_TRIALS)``.
    """
    _check_choice("direction", direction, DIRECTIONS)
    vis, thr = (visible_feats, visible_pids), (thermal_feats, thermal_pids)
    (qf, qp), (gf, gp) = (vis, thr) if direction == RGB_TO_IR else (thr, vis)
    return evaluate_regdb(distance(qf, gf), _as_array(qp), _as_array(gp), max_rank)
