"""The VI protocols: SYSU-MM01 gallery draws, the identity-unique SYSU metric, RegDB, trials."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from torchreid_pixelfade.engines.visible_infrared import protocol as vi
from torchreid_pixelfade.metrics import evaluate_rank

# --------------------------------------------------------------------------- reference loop


def reference_sysu(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20, reverse=False):
    """A per-query loop written from the official evaluation's description.

    Sort the gallery by distance; drop (official) every camera-2 image for a camera-3 query, or
    (reverse) every camera-3 image for a camera-2 query; skip queries without a kept match; the
    CMC counts each identity once at its first kept position; AP and INP use the kept list.
    """
    drop_q, drop_g = (2, 3) if reverse else (3, 2)
    first_ranks, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i])
        labels = g_pids[order]
        if q_cams[i] == drop_q:
            labels = labels[g_cams[order] != drop_g]
        match = labels == q_pids[i]
        if not match.any():
            continue
        unique_labels = []
        for label in labels:
            if label not in unique_labels:
                unique_labels.append(label)
        first_ranks.append(unique_labels.index(q_pids[i]))
        hits = np.flatnonzero(match)
        aps.append(np.mean([(k + 1) / (pos + 1) for k, pos in enumerate(hits)]))
        inps.append(len(hits) / (hits[-1] + 1))
    length = min(max_rank, len(set(g_pids.tolist())))
    cmc = [np.mean([r <= k for r in first_ranks]) for k in range(length)]
    return np.array(cmc), float(np.mean(aps)), float(np.mean(inps)), len(first_ranks)


def reference_standard(distmat, q_pids, g_pids, max_rank=20):
    """Standard CMC / AP / INP with nothing removed (AGW eval_regdb's description)."""
    first, aps, inps = [], [], []
    for i in range(len(q_pids)):
        match = g_pids[np.argsort(distmat[i])] == q_pids[i]
        if not match.any():
            continue
        hits = np.flatnonzero(match)
        first.append(hits[0])
        aps.append(np.mean([(k + 1) / (pos + 1) for k, pos in enumerate(hits)]))
        inps.append(len(hits) / (hits[-1] + 1))
    length = min(max_rank, len(g_pids))
    cmc = [np.mean([r <= k for r in first]) for k in range(length)]
    return np.array(cmc), float(np.mean(aps)), float(np.mean(inps))


def random_case(rng, num_q, num_g, num_ids, reverse=False, ties=False):
    """Random distances and SYSU labels; ``ties`` uses a few integer distance values."""
    ir_cams, rgb_cams = np.array([3, 6]), np.array([1, 2, 4, 5])
    q_cams, g_cams = (rgb_cams, ir_cams) if reverse else (ir_cams, rgb_cams)
    dist = rng.integers(0, 4, (num_q, num_g)).astype(float) if ties else rng.random((num_q, num_g))
    return (dist, rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g),
            rng.choice(q_cams, num_q), rng.choice(g_cams, num_g))


def assert_matches_reference(result, ref):
    cmc, m_ap, m_inp, num_valid = ref
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
    assert result.mAP == pytest.approx(m_ap, abs=1e-12)
    assert result.mINP == pytest.approx(m_inp, abs=1e-12)
    assert result.num_valid_queries == num_valid


# --------------------------------------------------------------------------- SYSU metric


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("direction", vi.DIRECTIONS)
def test_sysu_metric_matches_reference_loop(seed, direction):
    rng = np.random.default_rng(seed)
    reverse = direction == vi.RGB_TO_IR
    num_q, num_g = int(rng.integers(5, 60)), int(rng.integers(3, 80))
    case = random_case(rng, num_q, num_g, int(rng.integers(2, 15)), reverse, ties=seed % 2 == 1)
    if reference_sysu(*case, reverse=reverse)[3] == 0:
        pytest.skip("no valid query drawn")
    for chunk in (1, 7, 512):
        result = vi.evaluate_sysu(*case, direction=direction, chunk_size=chunk)
        assert_matches_reference(result, reference_sysu(*case, reverse=reverse))


def test_sysu_metric_matches_reference_at_sysu_scale():
    rng = np.random.default_rng(11)
    case = random_case(rng, 400, 384, 96)  # 96 ids x 4 cameras single-shot
    assert_matches_reference(vi.evaluate_sysu(*case, chunk_size=64), reference_sysu(*case))


def test_sysu_map_minp_equal_evaluate_rank_with_the_sysu_keep_mask():
    case = random_case(np.random.default_rng(3), 50, 40, 8)
    result = vi.evaluate_sysu(*case)
    base = evaluate_rank(*case, max_rank=20, protocol="sysu")
    assert result.mAP == base.mAP and result.mINP == base.mINP
    assert result.num_valid_queries == base.num_valid_queries
    # the identity-unique CMC is never below the image-level one
    assert np.all(result.cmc[:len(base.cmc)] >= base.cmc[:len(result.cmc)] - 1e-12)


def test_cam3_query_whose_only_match_is_in_cam2_is_skipped():
    g_pids, g_cams = np.array([1, 2, 3]), np.array([2, 1, 4])
    dist = np.array([[0.1, 0.2, 0.3],    # cam 3, pid 1: its only image is in cam 2 -> skipped
                     [0.3, 0.1, 0.2]])   # cam 6, pid 1: kept, ranked third
    result = vi.evaluate_sysu(dist, np.array([1, 1]), g_pids, np.array([3, 6]), g_cams)
    assert result.num_valid_queries == 1
    np.testing.assert_allclose(result.cmc, [0, 0, 1])
    assert result.mAP == pytest.approx(1 / 3) and result.mINP == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="No valid query"):
        vi.evaluate_sysu(dist[:1], np.array([1]), g_pids, np.array([3]), g_cams)


def test_cam2_images_of_other_identities_are_removed_for_cam3_queries():
    g_pids, g_cams = np.array([5, 7, 1]), np.array([2, 1, 4])
    dist = np.array([[0.1, 0.2, 0.3]] * 2)
    cam3 = vi.evaluate_sysu(dist[:1], np.array([1]), g_pids, np.array([3]), g_cams)
    cam6 = vi.evaluate_sysu(dist[:1], np.array([1]), g_pids, np.array([6]), g_cams)
    np.testing.assert_allclose(cam3.cmc, [0, 1, 1])  # pid 5 (cam 2) removed: second
    np.testing.assert_allclose(cam6.cmc, [0, 0, 1])
    assert cam3.mAP == pytest.approx(1 / 2) and cam6.mAP == pytest.approx(1 / 3)


def test_sysu_cmc_counts_each_identity_once():
    g_pids, g_cams = np.array([7, 7, 7, 1]), np.array([1, 4, 5, 1])
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    result = vi.evaluate_sysu(dist, np.array([1]), g_pids, np.array([6]), g_cams)
    np.testing.assert_allclose(result.cmc, [0, 1])  # two identities: CMC length 2
    assert result.rank(1) == 0 and result.rank(20) == 1
    assert result.mAP == pytest.approx(1 / 4) and result.mINP == pytest.approx(1 / 4)
    plain = evaluate_rank(dist, np.array([1]), g_pids, np.array([6]), g_cams, protocol="sysu")
    np.testing.assert_allclose(plain.cmc, [0, 0, 0, 1])


def test_ties_follow_argsort_order_like_agw():
    g_pids, g_cams = np.array([4, 1, 1, 2]), np.array([1, 1, 4, 5])
    dist = np.zeros((1, 4))  # all tied: np.argsort keeps gallery order for small rows
    result = vi.evaluate_sysu(dist, np.array([1]), g_pids, np.array([6]), g_cams)
    assert_matches_reference(result, reference_sysu(dist, np.array([1]), g_pids,
                                                    np.array([6]), g_cams))
    np.testing.assert_allclose(result.cmc, [0, 1, 1])
    assert result.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_reverse_direction_mirrors_the_removal():
    g_pids, g_cams = np.array([1, 9, 1]), np.array([3, 6, 6])
    dist = np.array([[0.1, 0.2, 0.3]] * 2)
    q_pids, q_cams = np.array([1, 1]), np.array([2, 1])
    result = vi.evaluate_sysu(dist, q_pids, g_pids, q_cams, g_cams, direction=vi.RGB_TO_IR)
    # cam-2 query: cam-3 image removed -> [9, 1], rank 2; cam-1 query: rank 1
    np.testing.assert_allclose(result.cmc, [0.5, 1])
    assert result.mAP == pytest.approx((1 / 2 + (1 + 2 / 3) / 2) / 2)
    mask = vi.sysu_reverse(q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_array_equal(mask, [[False, True, True], [True, True, True]])


def test_camera_numbers_must_fit_the_direction():
    dist = np.zeros((1, 2))
    with pytest.raises(ValueError, match="camera numbers"):  # 0-based ids
        vi.evaluate_sysu(dist, [1], [1, 2], [2], [0, 1])
    with pytest.raises(ValueError, match="camera numbers"):  # wrong direction
        vi.evaluate_sysu(dist, [1], [1, 2], [3], [6, 3], direction=vi.IR_TO_RGB)
    with pytest.raises(ValueError, match="direction"):
        vi.evaluate_sysu(dist, [1], [1, 2], [3], [1, 2], direction="v2t")


def test_sysu_accepts_torch_tensors():
    case = random_case(np.random.default_rng(5), 20, 30, 6)
    expected = vi.evaluate_sysu(*case)
    result = vi.evaluate_sysu(*(torch.as_tensor(a) for a in case))
    np.testing.assert_allclose(result.cmc, expected.cmc)
    assert result.mAP == pytest.approx(expected.mAP)


# --------------------------------------------------------------------------- RegDB


@pytest.mark.parametrize("seed", range(4))
def test_regdb_equals_evaluate_rank_none_and_reference(seed):
    rng = np.random.default_rng(seed)
    num_ids = 12
    q_pids = np.repeat(np.arange(num_ids), 3)
    g_pids = rng.permutation(np.repeat(np.arange(num_ids), 4))
    dist = rng.random((len(q_pids), len(g_pids)))
    result = vi.evaluate_regdb(dist, q_pids, g_pids)
    same_cam = np.zeros(len(q_pids), int), np.zeros(len(g_pids), int)
    base = evaluate_rank(dist, q_pids, g_pids, *same_cam, max_rank=20, protocol="none")
    np.testing.assert_allclose(result.cmc, base.cmc)
    assert (result.mAP, result.mINP) == (base.mAP, base.mINP)
    cmc, m_ap, m_inp = reference_standard(dist, q_pids, g_pids)
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-12)
    assert result.mAP == pytest.approx(m_ap) and result.mINP == pytest.approx(m_inp)


def test_regdb_trial_directions_swap_the_two_lists():
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(10), 10)
    vis, thr = rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
    v2t = vi.regdb_trial(vis, pids, thr, pids)
    t2v = vi.regdb_trial(vis, pids, thr, pids, direction=vi.IR_TO_RGB)
    np.testing.assert_allclose(v2t.cmc, vi.evaluate_regdb(-(vis @ thr.T), pids, pids).cmc)
    np.testing.assert_allclose(t2v.cmc, vi.evaluate_regdb(-(thr @ vis.T), pids, pids).cmc)
    assert v2t.mAP != t2v.mAP


# --------------------------------------------------------------------------- SYSU sampling


def make_files(rng, num_ids=30, missing=0.2):
    """``files[cam][pid]`` with 2..25 sorted names each; some (id, camera) pairs missing."""
    files = {}
    for cam in range(1, 7):
        for pid in range(1, num_ids + 1):
            if rng.random() < missing:
                continue
            count = int(rng.integers(2, 26))
            files.setdefault(cam, {})[pid] = sorted(
                f"cam{cam}/{pid:04d}/{k:04d}.jpg" for k in range(1, count + 1))
    return files


def agw_style_draw(files, trial, cams):
    """The single-shot draw as described: global ``random.seed(trial)``, then per sorted id and
    per camera with a folder, ``random.choice`` of its sorted files.
    """
    state = random.getstate()
    try:
        random.seed(trial)
        pids = sorted({p for by_pid in files.values() for p in by_pid})
        return [(random.choice(files[c][p]), p, c) for p in pids for c in cams
                if p in files.get(c, {})]
    finally:
        random.setstate(state)


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_single_shot_reproduces_the_agw_draw(mode):
    files = make_files(np.random.default_rng(0))
    for trial in vi.SYSU_TRIALS:
        gallery = vi.sample_sysu_gallery(files, trial, mode)
        assert gallery == agw_style_draw(files, trial, vi.SYSU_RGB_CAMS[mode])


def test_same_trial_same_gallery_and_trials_differ():
    files = make_files(np.random.default_rng(1))
    for shot in vi.SYSU_SHOTS:
        galleries = [vi.sample_sysu_gallery(files, t, shot=shot) for t in vi.SYSU_TRIALS]
        assert galleries[3] == vi.sample_sysu_gallery(files, 3, shot=shot)
        assert len({tuple(g) for g in galleries}) == len(galleries)
        # the draw does not depend on (and does not touch) the global random state
        random.seed(123)
        assert vi.sample_sysu_gallery(files, 3, shot=shot) == galleries[3]


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_gallery_sizes_single_and_multi_shot(mode):
    files = make_files(np.random.default_rng(2))
    cams = vi.SYSU_RGB_CAMS[mode]
    pairs = [(c, p) for c in cams for p in files.get(c, {})]
    single = vi.sample_sysu_gallery(files, 0, mode, "single")
    multi = vi.sample_sysu_gallery(files, 0, mode, "multi")
    assert len(single) == len(pairs)
    assert len(multi) == sum(min(10, len(files[c][p])) for c, p in pairs)
    for gallery, per_pair in ((single, 1), (multi, 10)):
        assert {cam for _, _, cam in gallery} == set(cams)
        counts = {}
        for item, pid, cam in gallery:
            assert item in files[cam][pid]
            counts[cam, pid] = counts.get((cam, pid), 0) + 1
        assert all(n == min(per_pair, len(files[c][p])) for (c, p), n in counts.items())
    assert len(set(multi)) == len(multi)  # without replacement


def test_query_is_every_ir_image_of_cams_3_and_6():
    files = make_files(np.random.default_rng(4))
    query = vi.sysu_query(files)
    expected = sum(len(v) for c in (3, 6) for v in files.get(c, {}).values())
    assert len(query) == expected and {c for _, _, c in query} == {3, 6}
    assert [r[1] for r in query] == sorted(r[1] for r in query)  # id-major, as AGW
    subset = vi.sysu_query(files, test_ids=[1, 2])
    assert {p for _, p, _ in subset} <= {1, 2}
    ir_to_rgb = vi.sysu_split(files, 2, "indoor")
    rgb_to_ir = vi.sysu_split(files, 2, "indoor", direction=vi.RGB_TO_IR)
    assert ir_to_rgb == rgb_to_ir[::-1] and ir_to_rgb[0] == query


def test_split_indices_follow_the_labels():
    rng = np.random.default_rng(6)
    pids = rng.integers(1, 20, 600)
    cams = rng.integers(1, 7, 600)
    q_idx, g_idx = vi.sysu_split_indices(pids, cams, trial=1)
    assert set(cams[q_idx]) <= {3, 6} and set(cams[g_idx]) <= {1, 2, 4, 5}
    assert len(q_idx) == np.isin(cams, [3, 6]).sum()
    assert len(g_idx) == len({(c, p) for c, p in zip(cams, pids, strict=True) if c in (1, 2, 4, 5)})
    r_q, r_g = vi.sysu_split_indices(pids, cams, trial=1, direction=vi.RGB_TO_IR)
    np.testing.assert_array_equal(r_q, g_idx)
    np.testing.assert_array_equal(r_g, q_idx)


def test_bad_sampling_arguments():
    files = make_files(np.random.default_rng(0), num_ids=3)
    with pytest.raises(ValueError, match="mode"):
        vi.sample_sysu_gallery(files, 0, mode="outdoor")
    with pytest.raises(ValueError, match="shot"):
        vi.sample_sysu_gallery(files, 0, shot="5")
    with pytest.raises(ValueError, match="trial"):
        vi.sample_sysu_gallery(files, -1)


# --------------------------------------------------------------------------- trials


def sysu_features(rng, num_ids=24, dim=32):
    """Per-image labels and features with identity structure, both modalities."""
    pids, cams = [], []
    for pid in range(num_ids):
        for cam in range(1, 7):
            n = int(rng.integers(1, 13))
            pids += [pid] * n
            cams += [cam] * n
    pids, cams = np.array(pids), np.array(cams)
    centres = rng.normal(size=(num_ids, dim))
    feats = centres[pids] + 1.5 * rng.normal(size=(len(pids), dim))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return feats, pids, cams


@pytest.mark.parametrize("direction", vi.DIRECTIONS)
def test_sysu_trials_from_features(direction):
    feats, pids, cams = sysu_features(np.random.default_rng(0))
    ir, rgb = np.isin(cams, [3, 6]), ~np.isin(cams, [3, 6])
    summary = vi.evaluate_sysu_trials(feats[ir], pids[ir], cams[ir], feats[rgb], pids[rgb],
                                      cams[rgb], direction=direction)
    assert summary.trials == vi.SYSU_TRIALS and len(summary.results) == 10
    rows = summary.per_trial()
    assert set(rows[0]) == {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}
    assert len({row["mAP"] for row in rows}) > 1  # the draws differ
    mean = summary.mean()
    for key in rows[0]:
        assert mean[key] == pytest.approx(np.mean([row[key] for row in rows]))
        assert 0.0 <= mean[key] <= 1.0
    # trial 4 by hand: draw the gallery from the labels, evaluate
    _, g_idx = vi.sysu_split_indices(pids[rgb], cams[rgb], trial=4)
    g = (feats[rgb][g_idx], pids[rgb][g_idx], cams[rgb][g_idx])
    q = (feats[ir], pids[ir], cams[ir])
    q, g = (q, g) if direction == vi.IR_TO_RGB else (g, q)
    by_hand = vi.evaluate_sysu(-(q[0] @ g[0].T), q[1], g[1], q[2], g[2], direction)
    assert summary.results[4].to_dict() == by_hand.to_dict()


def test_run_trials_with_a_callback():
    rng = np.random.default_rng(0)
    calls = []

    def one(trial):
        calls.append(trial)
        pids = np.repeat(np.arange(8), 2)
        return vi.evaluate_regdb(rng.random((16, 16)), pids, pids)

    summary = vi.run_trials(one, vi.REGDB_TRIALS)
    assert calls == list(range(1, 11)) and summary.trials == tuple(range(1, 11))
    assert summary.mean()["rank1"] == pytest.approx(
        np.mean([r.rank(1) for r in summary.results]))
    with pytest.raises(ValueError, match="trials"):
        vi.run_trials(one, [])
