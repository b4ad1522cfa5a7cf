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


# ----------------------------------------------------------------------------- fast path


def _loop_reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Per-query loop over a full argsort of each row (torchreid's way), Market protocol."""
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i])
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        matches = (g_pids[order] == q_pids[i])[keep].astype(int)
        if not matches.any():
            continue
        cum = matches.cumsum()
        hits = np.nonzero(matches)[0]
        aps.append(np.mean(cum[hits] / (hits + 1.0)))
        inps.append(cum[hits[-1]] / (hits[-1] + 1.0))
        cmcs.append(np.minimum(cum, 1)[:max_rank])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps))


def _assert_same_as_loop(problem, **kwargs):
    res = evaluate_rank(*problem, **kwargs)
    cmc, mean_ap, minp = _loop_reference(*problem, max_rank=len(res.cmc))
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)
    assert res.mAP == pytest.approx(mean_ap, abs=1e-12)
    assert res.mINP == pytest.approx(minp, abs=1e-12)
    return res


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.uint8])
def test_other_dtypes_rank_like_an_argsort(dtype):
    """Integer distances (all rows tied) and half precision rank exactly like argsort."""
    distmat, *labels = _random_problem(7, num_q=60, num_g=150)
    _assert_same_as_loop(((distmat * 100).astype(dtype), *labels), chunk_size=16)


def test_ties_at_matches_follow_argsort_order():
    """Distances rounded to 2 decimals: matches often tie with other items; tied rows fall back
    to the argsort, so the order of ties, and thus CMC and AP, equals torchreid's exactly."""
    distmat, *labels = _random_problem(8, num_q=200, num_g=400)
    problem = (np.round(distmat, 2), *labels)
    res = _assert_same_as_loop(problem, chunk_size=32)
    ref_cmc, ref_map = tr.metrics.evaluate_rank(*problem, max_rank=50, use_metric_cuhk03=False,
                                                use_cython=False)
    np.testing.assert_allclose(res.cmc, ref_cmc, atol=1e-12)
    assert res.mAP == pytest.approx(ref_map, abs=1e-12)


def test_inf_and_nan_distances_rank_like_an_argsort():
    """inf and NaN (sorted last by argsort) give the argsort's ranking, at matches or not."""
    distmat, *labels = _random_problem(9, num_q=80, num_g=120)
    distmat = distmat.astype(np.float64)
    rng = np.random.default_rng(0)
    distmat[rng.random(distmat.shape) < 0.05] = np.inf
    distmat[rng.random(distmat.shape) < 0.05] = np.nan
    _assert_same_as_loop((distmat, *labels), chunk_size=8)


def test_argsort_only_for_rows_with_ties(monkeypatch):
    """Continuous distances never need the argsort; integer ones need it on every valid row."""
    from torchreid_pixelfade.metrics import rank as rank_module
    argsorted = []
    original = rank_module._argsort_positions

    def counting(distmat, *args):
        argsorted.append(len(distmat))
        return original(distmat, *args)

    monkeypatch.setattr(rank_module, "_argsort_positions", counting)
    evaluate_rank(*_random_problem(10, num_q=100, num_g=300))
    assert argsorted == []
    res = evaluate_rank(*_random_problem(10, num_q=100, num_g=300, integer=True), chunk_size=25)
    assert sum(argsorted) >= res.num_valid_queries


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_threads_do_not_change_the_result(num_threads):
    problem = _random_problem(11, num_q=210, num_g=300)
    single = evaluate_rank(*problem, chunk_size=1000, num_threads=1)
    res = evaluate_rank(*problem, chunk_size=20, num_threads=num_threads)
    np.testing.assert_array_equal(res.cmc, single.cmc)
    assert (res.mAP, res.mINP, res.num_valid_queries) == (
        single.mAP, single.mINP, single.num_valid_queries)
    with pytest.raises(ValueError, match="num_threads"):
        evaluate_rank(*problem, num_threads=0)


def test_auto_chunk_size_bounds_the_chunk_memory():
    from torchreid_pixelfade.metrics.rank import CHUNK_BYTES, auto_chunk_size
    rows = auto_chunk_size(15913)  # Market-1501's gallery, float32
    assert rows * 15913 * (4 + 21) <= CHUNK_BYTES < (rows + 1) * 15913 * (4 + 21)
    assert auto_chunk_size(15913, itemsize=8) < rows
    assert auto_chunk_size(10 ** 9) == 1  # never zero rows
