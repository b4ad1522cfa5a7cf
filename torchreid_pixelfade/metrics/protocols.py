"""Evaluation protocols: which gallery items a query may be ranked against.

A *protocol* is a pure function ``protocol(q_pids, g_pids, q_camids, g_camids) -> keep`` that,
for a chunk of ``Q`` queries and the whole gallery of ``G`` items, returns a boolean keep-mask of
shape ``(Q, G)`` in gallery order: ``keep[i, j]`` is False when gallery item ``j`` must be removed
from query ``i``'s ranking list before CMC / mAP / mINP are computed
(:func:`torchreid_pixelfade.metrics.evaluate_rank`, which passes 1-D numpy arrays and accepts a
numpy array or torch tensor back).

Registered protocols (:data:`PROTOCOLS`, looked up by :func:`get_protocol`):

* ``"market"`` (:func:`market`): drop items with the query's pid **and** camera; torchreid's
  default (``eval_market1501``), also right for DukeMTMC-reID, MSMT17 and CUHK03's new protocol.
* ``"none"`` (:func:`keep_all`): keep everything; text-to-image (a text query has no camera).
* ``"sysu"`` (:func:`sysu`): SYSU-MM01; for a query from camera 3, drop every gallery item from
  camera 2 (same room), whatever its identity. Camera ids are 1-based physical camera numbers.
* ``"regdb"`` (:func:`regdb`): RegDB; keep everything (query and gallery are different
  modalities).

Any callable with the same signature may be passed instead of a name.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Union

import numpy as np

__all__ = ["Protocol", "PROTOCOLS", "market", "keep_all", "sysu", "regdb", "get_protocol",
           "SYSU_IR_INDOOR_CAM", "SYSU_RGB_INDOOR_CAM"]

#: ``protocol(q_pids, g_pids, q_camids, g_camids) -> (Q, G) bool keep-mask``.
Protocol = Callable[[Any, Any, Any, Any], Any]

#: SYSU-MM01 physical camera numbers (the ``cam1`` .. ``cam6`` folder names): camera 3 is the
#: indoor IR camera, installed in the same room as the indoor RGB camera 2.
SYSU_IR_INDOOR_CAM = 3
SYSU_RGB_INDOOR_CAM = 2


def market(q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any) -> Any:
    """Market-1501 rule: drop gallery items sharing both the query's pid and its camera.

    Same as ``torchreid.metrics.rank.eval_market1501``'s
    ``remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)``.

    Args:
        q_pids, q_camids: ``(Q,)`` query person / camera ids.
        g_pids, g_camids: ``(G,)`` gallery person / camera ids.

    Returns:
        ``(Q, G)`` boolean keep-mask.
    """
    return ~((q_pids[:, None] == g_pids[None, :]) & (q_camids[:, None] == g_camids[None, :]))


def keep_all(q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any) -> np.ndarray:
    """No filtering (registered as ``"none"``): every gallery item stays in every ranking list.

    For text-to-image retrieval, where a text query has no camera, and for any cross-modality
    setting whose query and gallery can never be the same shot.

    Returns:
        ``(Q, G)`` boolean keep-mask, all True.
    """
    return np.ones((len(q_pids), len(g_pids)), dtype=bool)


def sysu(q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any) -> Any:
    """SYSU-MM01 rule: a query from camera 3 is not ranked against gallery items from camera 2.

    Camera ids must be SYSU-MM01's **1-based physical camera numbers** 1..6 (folders ``cam1`` ..
    ``cam6``: RGB 1, 2, 4, 5; IR 3, 6), not torchreid's usual 0-based indices: with 0-based ids
    this rule would silently remove the wrong camera.

    Cameras 2 (indoor RGB) and 3 (indoor IR) film the same room, so a cam-3 probe could match a
    cam-2 image of the same scene. The official evaluation (wuancong/SYSU-MM01
    ``evaluation/get_cmc_multi_cam.m`` and ``get_map_multi_cam.m`` with ``cam_id = [1 2 2 4 5 6]``,
    i.e. "remove gallery samples from the same camera [location] of the probe") and AGW / DDAG's
    ``eval_sysu`` (``remove = (q_camid == 3) & (g_camids[order] == 2)``) remove **every** cam-2
    gallery item for a cam-3 query, **whatever its identity** (AGW's comment "same pid and camid"
    does not describe its code). Removing other identities too changes the rank of the true
    matches, so this is not ``market`` restricted to cameras 2/3. Queries from any other camera
    keep the whole gallery. Only the keep-mask is implemented here; SYSU's identity-deduplicated
    CMC is not.

    The rule is asymmetric, exactly as in AGW: in the reversed direction (RGB query -> IR
    gallery, which the official protocol does not define) nothing is removed. Pass a callable to
    :func:`~torchreid_pixelfade.metrics.evaluate_rank` for another choice.

    Returns:
        ``(Q, G)`` boolean keep-mask.
    """
    return ~((q_camids[:, None] == SYSU_IR_INDOOR_CAM) & (g_camids[None, :] == SYSU_RGB_INDOOR_CAM))


def regdb(q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any) -> np.ndarray:
    """RegDB rule: keep everything.

    RegDB's official evaluation (AGW ``eval_regdb``) sets every query camera to 1 and every
    gallery camera to 2 before the Market-style filter, so nothing is ever removed: query and
    gallery come from different modalities (visible vs thermal), in either search direction.

    Returns:
        ``(Q, G)`` boolean keep-mask, all True.
    """
    return keep_all(q_pids, g_pids, q_camids, g_camids)


#: Registered protocols by name.
PROTOCOLS: Dict[str, Protocol] = {
    "market": market,
    "none": keep_all,
    "sysu": sysu,
    "regdb": regdb,
}


def get_protocol(protocol: Union[str, Protocol]) -> Protocol:
    """Resolve a protocol name (see :data:`PROTOCOLS`) or pass a callable through unchanged.

    Args:
        protocol: a registered name such as ``"market"``, or a callable with the protocol
            signature ``(q_pids, g_pids, q_camids, g_camids) -> (Q, G) bool keep-mask``.

    Returns:
        The protocol function.

    Raises:
        ValueError: for an unknown name (the message lists the valid names) or an object that is
            neither a string nor callable.
    """
    if callable(protocol):
        return protocol
    if isinstance(protocol, str):
        try:
            return PROTOCOLS[protocol]
        except KeyError:
            raise ValueError(f"protocol: unknown name {protocol!r}; expected one of "
                             f"{sorted(PROTOCOLS)} or a callable") from None
    raise ValueError(f"protocol: expected a name from {sorted(PROTOCOLS)} or a callable, got "
                     f"{type(protocol).__name__}")
