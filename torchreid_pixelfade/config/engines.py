"""Config nodes of the Re-ID scenarios other than torchreid's image one (``data.type``)."""
from __future__ import annotations

from yacs.config import CfgNode as CN

#: ``data.type`` values: torchreid's ``image`` and the engines of this package.
DATA_TYPES = ("image", "visible_infrared")


def visible_infrared_defaults() -> CN:
    """The ``visible_infrared`` node (SYSU-MM01 / RegDB protocols, the authorised feature)."""
    node = CN()
    node.mode = "all"  # SYSU-MM01 search mode: 'all' or 'indoor' (also: -t sysu_mm01_indoor)
    node.shot = "single"  # SYSU-MM01 gallery: 'single' (official) or 'multi'
    node.trials = []  # [] = the protocol's (SYSU gallery draws 0..9; RegDB the dataset's trial)
    node.directions = []  # [] = default (SYSU both 'rgb_to_ir' and 'ir_to_rgb'; RegDB rgb_to_ir)
    node.feature = "bn"  # authorised feature: 'bn' (un-normalised BNNeck output) or 'pool'
    return node


def check_data_type(cfg: CN) -> str:
    """``data.type``, checked.

    Raises:
        ValueError: for an unknown type (the valid ones are listed).
    """
    if cfg.data.type not in DATA_TYPES:
        raise ValueError(f"Unknown data.type {cfg.data.type!r}; choose one of {DATA_TYPES}")
    return cfg.data.type


def vi_evaluation_kwargs(cfg: CN) -> dict:
    """Keyword arguments of ``engines.visible_infrared.task.evaluate_vi`` (besides models,
    folder and test set)."""
    node = cfg.visible_infrared
    return {"directions": list(node.directions) or None, "mode": None, "shot": node.shot,
            "trials": list(node.trials) or None, "batch_size": cfg.test.batch_size}
