"""Tests for torchreid_pixelfade.metrics.rank."""
import numpy as np
import pytest
import torch

from torchreid_pixelfade._torchreid import tr
from torchreid_pixelfade.metrics import RankResult, compute_distances, evaluate_rank


def _random_problem(seed: int, num_q: int = 300, num_g: int = 500, integer: bool = False):
    """Random re-id problem; query pids 40..44 never appear in the gallery (invalid queries)."""
    rng = np.random.default_rng(seed)
    if integer:  # many ties: checks that the sort order matches torchreid's exactly
        distmat = rng.integers(0, 20, size=(num_q, num_g)).astype(np.float32)
    else:
        distmat = rng.random((num_q, num_g)).astype(np.float32)
    q_pids = rng.integers(0, 45, size=num_q)
    g_pids = rng.integers(0, 40, size=num_g)
    q_camids = rng.integers(0, 4, size=num_q)
    g_camids = rng.integers(0, 4, size=num_g)
    return distmat, q_pids, g_pids, q_camids, g_camids


def _reference_minp(distmat, q_pids, g_pids, q_camids, g_camids) -> float:
    """Straightforward per-query mINP."""
    inps = []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i])
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        matches = (g_pids[order] == q_pids[i])[keep]
        if not matches.any():
            continue
        last = np.nonzero(matches)[0][-1]
        inps.append(matches.sum() / (last + 1))
    return float(np.mean(inps))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("integer", [False, True])
def test_matches_torchreid(seed, integer):
    problem = _random_problem(seed, integer=integer)
    res = evaluate_rank(*problem, max_rank=50)
    ref_cmc, ref_map = tr.metrics.evaluate_rank(*problem, max_rank=50, use_metric_cuhk03=False,
                                                use_cython=False)
    assert res.cmc.shape == (50,)
    np.testing.assert_allclose(res.cmc, ref_cmc, atol=1e-6)
    assert res.mAP == pytest.approx(ref_map, abs=1e-6)
    assert res.mINP == pytest.approx(_reference_minp(*problem), abs=1e-9)
    assert 0 < res.num_valid_queries < len(problem[1])  # some queries are invalid


def test_accepts_torch_tensors():
    problem = _random_problem(5)
    res_np = evaluate_rank(*problem)
    res_t = evaluate_rank(*(torch.as_tensor(a) for a in problem))
    np.testing.assert_array_equal(res_np.cmc, res_t.cmc)
    assert res_np.mAP == res_t.mAP and res_np.mINP == res_t.mINP


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_chunking_invariant(chunk_size):
    problem = _random_problem(6, num_q=150, num_g=200)
    full = evaluate_rank(*problem, chunk_size=10_000)
    chunked = evaluate_rank(*problem, chunk_size=chunk_size)
    np.testing.assert_allclose(chunked.cmc, full.cmc, atol=1e-12)
    assert chunked.mAP == pytest.approx(full.mAP, abs=1e-12)
    assert chunked.mINP == pytest.approx(full.mINP, abs=1e-12)
    assert chunked.num_valid_queries == full.num_valid_queries


def _tiny_problem():
    # gallery:  g0 pid1 cam0 | g1 pid2 cam1 | g2 pid1 cam1 | g3 pid3 cam1 | g4 pid1 cam2
    g_pids = np.array([1, 2, 1, 3, 1])
    g_camids = np.array([0, 1, 1, 1, 2])
    # q0: pid1 cam0, ranking g0 g1 g2 g3 g4 -> g0 removed (same pid+cam);
    #     filtered list: miss, HIT, miss, HIT -> AP = (1/2 + 2/4) / 2 = 0.5, INP = 2/4 = 0.5
    # q1: pid2 cam0, ranking g1 first -> AP = 1, INP = 1
    # q2: pid3 cam1, only g3 has pid3 and it shares the camera -> invalid, skipped
    q_pids = np.array([1, 2, 3])
    q_camids = np.array([0, 0, 1])
    distmat = np.array([
        [0.0, 1.0, 2.0, 3.0, 4.0],
        [3.0, 0.0, 1.0, 2.0, 4.0],
        [1.0, 2.0, 3.0, 0.0, 4.0],
    ])
    return distmat, q_pids, g_pids, q_camids, g_camids


def test_hand_computed_example():
    res = evaluate_rank(*_tiny_problem(), max_rank=50)
    assert isinstance(res, RankResult)
    assert res.num_valid_queries == 2
    np.testing.assert_allclose(res.cmc, [0.5, 1.0, 1.0, 1.0, 1.0])
    assert res.mAP == pytest.approx(0.75)
    assert res.mINP == pytest.approx(0.75)


def test_small_gallery_rank_beyond_cmc():
    res = evaluate_rank(*_tiny_problem())
    assert len(res.cmc) == 5
    assert res.rank(10) == 1.0
    d = res.to_dict()
    assert set(d) == {"rank1", "rank5", "rank10", "mAP", "mINP"}
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in d.values())
    assert d["rank1"] == 0.5
    with pytest.raises(ValueError):
        res.rank(0)


def test_no_valid_query_raises():
    distmat = np.random.default_rng(0).random((3, 4))
    with pytest.raises(ValueError, match="No valid query"):
        evaluate_rank(distmat, np.array([7, 8, 9]), np.array([1, 2, 3, 4]),
                      np.zeros(3), np.zeros(4))
    # same pid but only on the same camera -> also invalid
    with pytest.raises(ValueError, match="No valid query"):
        evaluate_rank(distmat, np.array([1, 1, 1]), np.array([1, 1, 2, 2]),
                      np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("bad", ["q_pids", "g_pids", "q_camids", "g_camids", "distmat"])
def test_shape_validation(bad):
    args = dict(zip(["distmat", "q_pids", "g_pids", "q_camids", "g_camids"], _tiny_problem()))
    args[bad] = args[bad][:-1] if bad != "distmat" else args[bad][0]
    with pytest.raises(ValueError, match="expected"):
        evaluate_rank(**args)


def test_compute_distances():
    rng = np.random.default_rng(0)
    qf = rng.normal(size=(4, 8)).astype(np.float32)
    gf = rng.normal(size=(6, 8)).astype(np.float32)
    d = compute_distances(qf, gf)
    expected = ((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1)
    assert d.shape == (4, 6)
    np.testing.assert_allclose(d, expected, rtol=1e-4, atol=1e-4)

    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    cos = compute_distances(torch.from_numpy(qf), torch.from_numpy(gf), metric="cosine")
    np.testing.assert_allclose(cos, 1 - qn @ gn.T, atol=1e-5)
    d_norm = compute_distances(qf, gf, normalize=True)
    np.testing.assert_allclose(d_norm, 2 - 2 * qn @ gn.T, atol=1e-5)

    with pytest.raises(ValueError, match="metric"):
        compute_distances(qf, gf, metric="manhattan")
    with pytest.raises(ValueError, match="Feature dims"):
        compute_distances(qf, gf[:, :4])
    with pytest.raises(ValueError, match="2-D"):
        compute_distances(qf[0], gf)
