"""Config nodes of the Re-ID scenarios other than torchreid's image one (``data.type``)."""
from __future__ import annotations

from yacs.config import CfgNode as CN

#: ``data.type`` values: torchreid's ``image`` and the engines of this package.
DATA_TYPES = ("image", "visible_infrared", "text_image")


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


def text_image_defaults() -> CN:
    """The ``text_image`` node (tokenizer, IRRA's losses and caption masking)."""
    node = CN()
    node.tokenizer = "clip_bpe"  # 'clip_bpe' (IRRA's ids; the [text] extra) or 'word' (built
    # from the source's training captions: no dependency, for the demo and CPU models)
    node.context_length = 77  # token positions (IRRA 77; must equal the model's)
    node.losses = ["sdm", "id", "mlm"]  # IRRA's; 'itc' is the CLIP contrastive alternative
    node.mask_probability = 0.15  # MLM: share of ordinary tokens selected for masking
    node.temperature = 0.02  # SDM temperature (logit scale 1 / temperature, fixed)
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


#: AGW pads 10 px before its random crop at 288x144; smaller inputs pad in proportion.
AGW_PAD, AGW_HEIGHT = 10, 288


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
            "pad": round(AGW_PAD * cfg.data.height / AGW_HEIGHT),
            "seed": cfg.train.seed, "num_batches": node.batches_per_epoch or None}
    smoothing = 0.1 if cfg.loss.softmax.label_smooth else 0.0
    engine = {"label_smoothing": smoothing, "triplet_weight": cfg.loss.triplet.weight_t,
              **{k: v for k, v in vi_evaluation_kwargs(cfg).items() if k != "batch_size"},
              "batch_size_test": cfg.test.batch_size}
    return {"data": data, "engine": engine}


#: IRRA pads 10 px before its random crop at 384x128; smaller inputs pad in proportion.
IRRA_PAD, IRRA_HEIGHT = 10, 384


def t2i_training_kwargs(cfg: CN) -> dict:
    """``{"data": ..., "engine": ...}`` keyword arguments of ``build_t2i_datamanager`` and
    ``build_t2i_engine`` (besides data, tokenizer, model): IRRA's Adam groups and cosine
    schedule with ``train.lr``, ``train.weight_decay``, ``train.max_epoch`` and
    ``train.warmup_epochs``; ``train.batch_size`` captions per batch."""
    node = cfg.text_image
    data = {"batch_size": cfg.train.batch_size, "context_length": node.context_length,
            "pad": round(IRRA_PAD * cfg.data.height / IRRA_HEIGHT),
            "mask_probability": node.mask_probability, "workers": cfg.data.workers,
            "seed": cfg.train.seed, "mean": cfg.data.norm_mean, "std": cfg.data.norm_std}
    engine = {"lr": cfg.train.lr, "weight_decay": cfg.train.weight_decay,
              "num_epochs": cfg.train.max_epoch, "warmup_epochs": cfg.train.warmup_epochs,
              "loss_names": list(node.losses), "batch_size_test": cfg.test.batch_size}
    return {"data": data, "engine": engine}
