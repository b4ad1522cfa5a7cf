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
    node.batches_per_epoch = 0  # training: paired batches per epoch; 0 = about one pass
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


def vi_training_kwargs(cfg: CN) -> dict:
    """``{"data": ..., "engine": ...}`` keyword arguments of ``build_vi_datamanager`` and
    ``VIEngine`` (besides data manager, model, optimiser and scheduler; torchreid's idiom: ``train.batch_size`` = P identities x
    ``sampler.num_instances`` K images, per modality; AGW: 8 x 4).

    Raises:
        ValueError: if ``train.batch_size`` is not a multiple of ``sampler.num_instances``.
    """
    batch, num_pos = cfg.train.batch_size, cfg.sampler.num_instances
    if num_pos < 1 or batch % num_pos or batch < num_pos:
        raise ValueError(f"train.batch_size {batch} must be a positive multiple of "
                         f"sampler.num_instances {num_pos} (P identities x K images)")
    node = cfg.visible_infrared
    data = {"num_ids": batch // num_pos, "num_pos": num_pos, "workers": cfg.data.workers,
            "seed": cfg.train.seed, "num_batches": node.batches_per_epoch or None}
    smoothing = 0.1 if cfg.loss.softmax.label_smooth else 0.0
    engine = {"label_smoothing": smoothing, "triplet_weight": cfg.loss.triplet.weight_t,
              **{k: v for k, v in vi_evaluation_kwargs(cfg).items() if k != "batch_size"},
              "batch_size_test": cfg.test.batch_size}
    return {"data": data, "engine": engine}
