"""Tests for torchreid_pixelfade.metrics.protocols and evaluate_rank(protocol=...)."""
import numpy as np
import pytest
import torch

from torchreid_pixelfade.metrics import PROTOCOLS, evaluate_rank, get_protocol
from torchreid_pixelfade.metrics.protocols import keep_all, market, regdb, sysu


def _loop_reference(distmat, q_pids, g_pids, keep_rows, max_rank=20):
    """Plain per-query loop (torchreid / AGW style): standard CMC, AP and INP on the kept list.

    ``keep_rows[i]`` is query i's keep-mask in gallery order.
    """
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i])
        matches = (g_pids[order] == q_pids[i])[keep_rows[i][order]].astype(int)
        if not matches.any():
            continue
        cum = matches.cumsum()
        hits = np.nonzero(matches)[0]
        inps.append(cum[hits[-1]] / (hits[-1] + 1.0))
        aps.append(np.mean(cum[hits] / (hits + 1.0)))
        cmc = np.minimum(cum, 1)[:max_rank]
        cmcs.append(np.pad(cmc, (0, max_rank - len(cmc)), constant_values=1))
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


def _random_problem(seed, num_q=120, num_g=200, cams=(1, 2, 3, 4, 5, 6), integer=False):
    rng = np.random.default_rng(seed)
    if integer:  # many ties
        distmat = rng.integers(0, 20, size=(num_q, num_g)).astype(np.float32)
    else:
        distmat = rng.random((num_q, num_g)).astype(np.float32)
    q_pids = rng.integers(0, 25, size=num_q)  # pids 20..24 never in the gallery
    g_pids = rng.integers(0, 20, size=num_g)
    q_camids = rng.choice(cams, size=num_q)
    g_camids = rng.choice(cams, size=num_g)
    return distmat, q_pids, g_pids, q_camids, g_camids


# ----------------------------------------------------------------------------- the masks


def _hand_made():
    # gallery:      g0     g1     g2     g3     g4     g5
    g_pids = np.array([1, 1, 2, 1, 2, 1])
    g_camids = np.array([1, 2, 2, 3, 4, 6])
    # queries: q0 pid1 cam3 (SYSU indoor IR), q1 pid2 cam6 (outdoor IR), q2 pid1 cam2
    q_pids = np.array([1, 2, 1])
    q_camids = np.array([3, 6, 2])
    return q_pids, g_pids, q_camids, g_camids


def test_market_mask_drops_same_pid_and_same_camera_only():
    expected = np.array([
        [1, 1, 1, 0, 1, 1],  # q0 pid1 cam3: only g3 (pid1, cam3)
        [1, 1, 1, 1, 1, 1],  # q1 pid2 cam6: no pid2 item on cam6
        [1, 0, 1, 1, 1, 1],  # q2 pid1 cam2: g1 (pid1, cam2); g2 is cam2 but pid2 -> kept
    ], dtype=bool)
    mask = market(*_hand_made())
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_sysu_mask_drops_every_cam2_item_for_cam3_queries():
    expected = np.array([
        [1, 0, 0, 1, 1, 1],  # q0 cam3: g1 and g2 (cam2), whatever their pid; g3 (cam3) kept
        [1, 1, 1, 1, 1, 1],  # q1 cam6: nothing removed
        [1, 1, 1, 1, 1, 1],  # q2 cam2 (RGB query): nothing removed, the rule is one-way
    ], dtype=bool)
    mask = sysu(*_hand_made())
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_sysu_mask_matches_agw_eval_sysu_expression():
    """AGW eval_sysu, per query: ``remove = (q_camid == 3) & (g_camids[order] == 2)``."""
    _, q_pids, g_pids, q_camids, g_camids = _random_problem(0)
    mask = sysu(q_pids, g_pids, q_camids, g_camids)
    for i, q_camid in enumerate(q_camids):
        np.testing.assert_array_equal(mask[i], ~((q_camid == 3) & (g_camids == 2)))


@pytest.mark.parametrize("protocol", [keep_all, regdb])
def test_keep_all_and_regdb_keep_everything(protocol):
    mask = protocol(*_hand_made())
    assert mask.shape == (3, 6) and mask.dtype == bool and mask.all()


def test_registry_and_get_protocol():
    assert set(PROTOCOLS) == {"market", "none", "sysu", "regdb"}
    assert get_protocol("market") is market and get_protocol("none") is keep_all
    assert get_protocol("sysu") is sysu and get_protocol("regdb") is regdb

    def custom(q_pids, g_pids, q_camids, g_camids):
        return np.ones((len(q_pids), len(g_pids)), dtype=bool)

    assert get_protocol(custom) is custom


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown name 'duke'.*'market', 'none', 'regdb', 'sysu'"):
        get_protocol("duke")
    with pytest.raises(ValueError, match="unknown name 'Market'"):
        evaluate_rank(*_random_problem(0), protocol="Market")
    with pytest.raises(ValueError, match="or a callable, got int"):
        get_protocol(3)


# ------------------------------------------------------------ evaluate_rank with a protocol


def test_default_protocol_is_market():
    problem = _random_problem(1, cams=(0, 1, 2, 3))
    default = evaluate_rank(*problem)
    for protocol in ("market", market):
        res = evaluate_rank(*problem, protocol=protocol)
        np.testing.assert_array_equal(res.cmc, default.cmc)
        assert (res.mAP, res.mINP, res.num_valid_queries) == (
            default.mAP, default.mINP, default.num_valid_queries)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("integer", [False, True])
def test_none_equals_a_plain_loop(seed, integer):
    distmat, q_pids, g_pids, q_camids, g_camids = _random_problem(seed, integer=integer)
    res = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20,
                        protocol="none")
    cmc, ap, inp, valid = _loop_reference(distmat, q_pids, g_pids,
                                          np.ones(distmat.shape, dtype=bool))
    assert res.num_valid_queries == valid == np.isin(q_pids, g_pids).sum()
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)
    assert res.mAP == pytest.approx(ap, abs=1e-12)
    assert res.mINP == pytest.approx(inp, abs=1e-12)
    # nothing is removed: a query's own-camera matches count, unlike under market
    assert res.mAP != evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids).mAP


@pytest.mark.parametrize("seed", [0, 1])
def test_regdb_equals_none(seed):
    problem = _random_problem(seed)
    a = evaluate_rank(*problem, protocol="regdb")
    b = evaluate_rank(*problem, protocol="none")
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert (a.mAP, a.mINP) == (b.mAP, b.mINP)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [7, 512])
def test_sysu_equals_a_plain_loop(seed, chunk_size):
    """AP and mINP equal AGW's eval_sysu (its CMC is identity-deduplicated: not compared)."""
    distmat, q_pids, g_pids, q_camids, g_camids = _random_problem(seed, integer=seed == 2)
    res = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20,
                        chunk_size=chunk_size, protocol="sysu")
    keep = ~((q_camids[:, None] == 3) & (g_camids[None, :] == 2))
    cmc, ap, inp, valid = _loop_reference(distmat, q_pids, g_pids, keep)
    assert res.num_valid_queries == valid
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)
    assert res.mAP == pytest.approx(ap, abs=1e-12)
    assert res.mINP == pytest.approx(inp, abs=1e-12)


def test_sysu_removes_other_identities_too():
    """A cam-3 query whose true match is ranked behind a cam-2 impostor moves up to rank 1."""
    distmat = np.array([[0.1, 0.2, 0.3]])
    q_pids, q_camids = np.array([7]), np.array([3])
    g_pids, g_camids = np.array([8, 7, 9]), np.array([2, 1, 4])
    assert evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids,
                         protocol="sysu").rank(1) == 1.0
    for protocol in ("market", "none"):
        assert evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids,
                             protocol=protocol).rank(1) == 0.0


def test_query_without_kept_match_is_dropped():
    # q0 (cam3) has its only match on cam2 -> dropped under sysu, valid under none
    distmat = np.array([[0.1, 0.2], [0.2, 0.1]])
    q_pids, q_camids = np.array([1, 2]), np.array([3, 6])
    g_pids, g_camids = np.array([1, 2]), np.array([2, 1])
    assert evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids,
                         protocol="sysu").num_valid_queries == 1
    assert evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids,
                         protocol="none").num_valid_queries == 2
    with pytest.raises(ValueError, match="No valid query.*'sysu' protocol"):
        evaluate_rank(distmat[:1], q_pids[:1], g_pids, q_camids[:1], g_camids, protocol="sysu")


def test_callable_protocol_numpy_or_torch_mask():
    problem = _random_problem(3)

    def market_torch(q_pids, g_pids, q_camids, g_camids):
        return torch.from_numpy(market(q_pids, g_pids, q_camids, g_camids))

    ref = evaluate_rank(*problem, chunk_size=50)
    for protocol in (market_torch, lambda *ids: market(*ids).astype(np.uint8)):
        res = evaluate_rank(*problem, chunk_size=50, protocol=protocol)
        np.testing.assert_array_equal(res.cmc, ref.cmc)
        assert (res.mAP, res.mINP) == (ref.mAP, ref.mINP)


def test_callable_protocol_with_wrong_shape_is_rejected():
    def transposed(q_pids, g_pids, q_camids, g_camids):
        return np.ones((len(g_pids), len(q_pids)), dtype=bool)

    with pytest.raises(ValueError, match=r"protocol 'transposed': expected a keep-mask of shape "
                                         r"\(120, 200\), got \(200, 120\)"):
        evaluate_rank(*_random_problem(0), protocol=transposed)
