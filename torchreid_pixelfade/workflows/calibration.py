"""eps calibrated per model when ``pixelfade.eps_flip_multiple`` is set (the ``protect`` edge).

The measurement is :func:`~torchreid_pixelfade.protect.calibration.flip_calibrated_eps`; this
module decides where it runs: on up to :data:`CALIBRATION_IMAGES` of the images to protect, on
rank 0 only (the others receive its value), and not at all when the output folder already holds
images calibrated the same way (a resumed run reuses their eps, so a measurement that differs
in its last bits on another device or world size cannot refuse the folder).
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import torch

from .. import config as C
from .. import distributed
from ..models import AuthorizedModel
from ..protect.calibration import (LOOSE_FLIP_TO_PAIR, calibrated_eps, flip_to_pair,
                                   mirrored_features)
from ..store import ImageRecord, ProtectedFolder, load_batch
from ..store.records import spaced

logger = logging.getLogger(__name__)

#: Most images the calibration reads (evenly spaced over the records to protect).
CALIBRATION_IMAGES = 512


def calibrated_kwargs(cfg, model: AuthorizedModel, records: Sequence[ImageRecord],
                      out_dir: str, device: str | torch.device) -> tuple[dict, dict]:
    """The protector's keyword arguments, with ``eps`` calibrated when asked.

    Args:
        cfg: the frozen config (``pixelfade.protector``, its hyper-parameters,
            ``pixelfade.eps_flip_multiple``, ``.skip_corrupt``, ``data.height/width``).
        model: the authorised model, on ``device``.
        records: the images about to be protected (all ranks' records, in the same order).
        out_dir: the output folder (its stored calibration is reused).
        device: this rank's device.

    Returns:
        ``(kwargs, calibration)``: ``kwargs`` for ``build_protector``; ``calibration`` the
        identity's ``eps_calibration`` (``{}`` when eps is as configured).

    Raises:
        ValueError: if no sampled image is readable, or the model's feature ignores mirroring
            (see :func:`flip_calibrated_eps`).
    """
    kwargs, multiple = C.protector_kwargs(cfg), cfg.pixelfade.eps_flip_multiple
    if not multiple or not records:
        return kwargs, {}
    if "eps_mode" not in kwargs:
        logger.info("pixelfade.eps_flip_multiple: protector %r has no eps; nothing to calibrate",
                    cfg.pixelfade.protector)
        return kwargs, {}
    chosen = spaced(records, CALIBRATION_IMAGES)
    calibration = {"flip_multiple": float(multiple), "images": len(chosen)}
    eps = None
    if distributed.context_from_env().rank == 0:  # the other ranks receive its value
        eps = stored_eps(out_dir, cfg.pixelfade.protector, kwargs["eps_mode"], calibration)
        if eps is None:
            eps = _measure(model, chosen, kwargs, cfg, device)
    return {**kwargs, "eps": distributed.from_rank_zero(eps, device)}, calibration


def _measure(model: AuthorizedModel, chosen: Sequence[ImageRecord], kwargs: dict, cfg,
             device: str | torch.device) -> float:
    """The calibrated eps of the readable ``chosen`` images (logged; a warning when the bound
    is loose, see :data:`LOOSE_FLIP_TO_PAIR`), from one pass of :func:`mirrored_features`."""
    _, tensors, skipped = load_batch(chosen, cfg.data.height, cfg.data.width,
                                     cfg.pixelfade.skip_corrupt)
    if not tensors:
        raise ValueError(f"eps calibration: none of the {len(chosen)} images sampled could be "
                         f"read ({len(skipped)} skipped as unreadable)")
    reduction, multiple = kwargs.get("loss_reduction", "mean"), cfg.pixelfade.eps_flip_multiple
    features, mirrored = mirrored_features(model, torch.stack(tensors).to(device))
    eps = calibrated_eps(features, mirrored, multiple, reduction, kwargs["eps_mode"])
    logger.info("eps calibrated on %d images: %g x the median flip distance -> eps %g (%s)",
                len(tensors), multiple, eps, kwargs["eps_mode"])
    bound = flip_to_pair(features, mirrored, reduction) * multiple if len(features) > 1 else 0
    if bound > LOOSE_FLIP_TO_PAIR:
        logger.warning(
            "eps calibration: the bound is %.2f of the median distance between two different "
            "images (above %.2f): the model's feature moves under a mirror image almost as "
            "between people, so a protected image may lose its ranking; a better-trained "
            "model, a smaller pixelfade.eps_flip_multiple, or a given eps "
            "(pixelfade.eps_flip_multiple 0) are the ways out", bound, LOOSE_FLIP_TO_PAIR)
    return eps


def stored_eps(out_dir: str, protector: str, eps_mode: str, calibration: dict) -> float | None:
    """The eps of the folder at ``out_dir`` if it was calibrated as ``calibration`` for the same
    protector and ``eps_mode``, else None (no folder, or other settings: those are refused
    later by the identity check, with the differences named)."""
    if not ProtectedFolder.exists(out_dir):
        return None
    identity = ProtectedFolder.open(out_dir).identity
    if identity.protector != protector or identity.eps_calibration != calibration or \
            identity.hparams.get("eps_mode") != eps_mode:
        return None
    logger.info("eps %g as calibrated for the images already in %s", identity.hparams["eps"],
                os.path.abspath(out_dir))
    return identity.hparams["eps"]

