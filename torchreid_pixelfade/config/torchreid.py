"""Configuration at the edge: torchreid's yacs defaults plus a ``pixelfade`` node, and adapters.

The flow is the one of torchreid's ``scripts/main.py``: :func:`get_default_config` ->
``--config-file`` -> ``--root/-s/-t/--transforms`` -> trailing ``KEY VALUE`` overrides, then small
adapter functions turn the frozen config into plain keyword dicts. Library classes never see a
config object.

PyPI torchreid ships no ``scripts/default_config.py``; the torchreid part below keeps its key names
and defaults.
"""
from __future__ import annotations

import argparse
import ast
from typing import Any, Sequence

from yacs.config import CfgNode as CN

from .models import IMAGENET_MEAN, IMAGENET_STD


def _torchreid_defaults() -> CN:
    cfg = CN()
    cfg.model = CN()
    cfg.model.name = "resnet50"
    cfg.model.pretrained = True  # ImageNet weights (needs the network); our configs turn it off
    cfg.model.load_weights = ""  # path to model weights
    cfg.model.resume = ""  # checkpoint to resume training from

    cfg.data = CN()
    cfg.data.type = "image"
    cfg.data.root = "reid-data"
    cfg.data.sources = ["market1501"]
    cfg.data.targets = ["market1501"]
    cfg.data.workers = 4
    cfg.data.split_id = 0
    cfg.data.height = 256
    cfg.data.width = 128
    cfg.data.combineall = False
    cfg.data.transforms = ["random_flip"]
    cfg.data.k_tfm = 1
    cfg.data.norm_mean = list(IMAGENET_MEAN)
    cfg.data.norm_std = list(IMAGENET_STD)
    cfg.data.save_dir = "log"
    cfg.data.load_train_targets = False

    cfg.market1501 = CN()
    cfg.market1501.use_500k_distractors = False
    cfg.cuhk03 = CN()
    cfg.cuhk03.labeled_images = False
    cfg.cuhk03.classic_split = False
    cfg.cuhk03.use_metric_cuhk03 = False

    cfg.sampler = CN()
    cfg.sampler.train_sampler = "RandomSampler"
    cfg.sampler.train_sampler_t = "RandomSampler"
    cfg.sampler.num_instances = 4
    cfg.sampler.num_cams = 1
    cfg.sampler.num_datasets = 1

    cfg.video = CN()
    cfg.video.seq_len = 15
    cfg.video.sample_method = "evenly"
    cfg.video.pooling_method = "avg"

    cfg.train = CN()
    cfg.train.optim = "adam"
    cfg.train.lr = 0.0003
    cfg.train.weight_decay = 5e-4
    cfg.train.max_epoch = 60
    cfg.train.start_epoch = 0
    cfg.train.batch_size = 32
    cfg.train.fixbase_epoch = 0
    cfg.train.open_layers = ["classifier"]
    cfg.train.staged_lr = False
    cfg.train.new_layers = ["classifier"]
    cfg.train.base_lr_mult = 0.1
    cfg.train.lr_scheduler = "single_step"
    cfg.train.stepsize = [20]
    cfg.train.gamma = 0.1
    cfg.train.print_freq = 20
    cfg.train.seed = 1
    cfg.train.warmup_epochs = 0  # ours: linear warm-up epochs before the scheduler (0: none)

    cfg.sgd = CN()
    cfg.sgd.momentum = 0.9
    cfg.sgd.dampening = 0.0
    cfg.sgd.nesterov = False
    cfg.rmsprop = CN()
    cfg.rmsprop.alpha = 0.99
    cfg.adam = CN()
    cfg.adam.beta1 = 0.9
    cfg.adam.beta2 = 0.999

    cfg.loss = CN()
    cfg.loss.name = "softmax"
    cfg.loss.softmax = CN()
    cfg.loss.softmax.label_smooth = True
    cfg.loss.triplet = CN()
    cfg.loss.triplet.margin = 0.3
    cfg.loss.triplet.weight_t = 1.0
    cfg.loss.triplet.weight_x = 0.0

    cfg.test = CN()
    cfg.test.batch_size = 100
    cfg.test.dist_metric = "euclidean"
    cfg.test.normalize_feature = False
    cfg.test.ranks = [1, 5, 10, 20]
    cfg.test.evaluate = False
    cfg.test.eval_freq = -1
    cfg.test.start_eval = 0
    cfg.test.rerank = False
    cfg.test.visrank = False
    cfg.test.visrank_topk = 10
    return cfg


def _pixelfade_defaults() -> CN:
    node = CN()
    node.enabled = False  # protect query/gallery in every evaluation
    node.protector = "pixelfade"  # any name of torchreid_pixelfade.list_protectors()
    node.protect = ["query", "gallery"]  # which sides are stored protected
    # PixelFade hyper-parameters (paper 4.1.4 with the official code's behaviour)
    node.steps = 100
    node.warmup_steps = 5
    node.num_masks = 5
    node.eps = 0.03
    node.eps_mode = "absolute"  # 'absolute' per-dimension MSE, or 'relative' to mean(f(x)^2)
    node.momentum = 0.6
    node.beta = 0.01
    node.beta_temp = 0.04
    node.no_replace_last = 5
    node.loss_reduction = "mean"  # 'mean' over feature dims (official) or 'sum' (paper)
    node.constraint_scope = "image"  # 'image' (paper Eq. 1) or 'batch' (official code)
    node.mask_index = "step"  # 'step' = t mod I (official) or 'count' = PRO counter (paper)
    node.mask_unit = "element"  # 'element' (each channel value) or 'pixel' (all channels)
    node.co_every_step = True  # official; False = paper's exclusive CO/PRO
    node.clamp = "valid"  # 'valid' pixel range or 'batch' (official scalar min/max)
    node.quantize = True  # optimise and measure on 8-bit rounded images, as stored
    # ablations (paper Tables 3-4, Fig. 4)
    node.target = "noise"  # 'noise', 'zeros', 'other', 'contrastive'
    node.noise_weight = 1.0  # target (1 - w) x + w noise
    node.replacement = "replace"  # 'replace', 'perturb', 'l1'
    node.perturb_amplitude = 0.5
    node.l1_weight = 1.0
    # simple protectors; -1 = the paper's value at 256x128 scaled with the image height
    node.blur_sigma = -1.0
    node.mosaic_cell = -1
    # running
    node.batch_size = 32
    node.seed = -1  # -1: noise seeded from the OS
    node.cache_dir = ""  # where protected images are stored and reused
    node.report_setting = "P2P"  # which setting's Rank-1/mAP evaluation returns
    node.skip_corrupt = False  # skip unreadable images (listed in the manifest) instead of failing
    return node


def get_default_config() -> CN:
    """torchreid's default configuration plus the ``pixelfade`` node (not frozen)."""
    cfg = _torchreid_defaults()
    cfg.pixelfade = _pixelfade_defaults()
    return cfg


def _coerce(default: Any, value: Any, key: str) -> Any:
    """Accepts an int where the default is a float (``beta 1`` means 1.0); yacs would refuse."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, str) and isinstance(value, (int, float)) and key.endswith("cache_dir"):
        return str(value)
    return value


def _parse(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def merge_opts(cfg: CN, opts: Sequence[str]) -> None:
    """``merge_from_list`` with the int-for-float coercion and key-naming errors.

    Raises:
        KeyError: for an unknown key (named in the message).
        ValueError: for a value of the wrong type (key, expected and given types named).
    """
    if len(opts) % 2:
        raise ValueError(f"Overrides must be KEY VALUE pairs, got an odd number: {list(opts)}")
    fixed = []
    for key, raw in zip(opts[0::2], opts[1::2]):
        node = cfg
        for part in key.split(".")[:-1]:
            node = node.get(part) if isinstance(node, CN) else None
        leaf = key.split(".")[-1]
        if not isinstance(node, CN) or leaf not in node:
            raise KeyError(f"Unknown config key: {key}")
        value = _coerce(node[leaf], _parse(raw), key)
        fixed += [key, repr(value) if not isinstance(value, str) else value]
    cfg.merge_from_list(fixed)


def _coerce_tree(default: CN, loaded: CN, prefix: str = "") -> None:
    for key, value in loaded.items():
        name = prefix + key
        if key not in default:
            raise KeyError(f"Unknown config key: {name}")
        if isinstance(value, CN):
            _coerce_tree(default[key], value, name + ".")
        else:
            loaded[key] = _coerce(default[key], value, name)


def merge_file(cfg: CN, path: str) -> None:
    """``merge_from_file`` that names the offending key for unknown keys and wrong types."""
    with open(path) as handle:
        loaded = cfg.load_cfg(handle)
    _coerce_tree(cfg, loaded)
    cfg.merge_from_other_cfg(loaded)


def add_torchreid_arguments(parser: argparse.ArgumentParser) -> None:
    """torchreid's ``scripts/main.py`` arguments: --config-file, -s, -t, --transforms, --root, opts."""
    parser.add_argument("--config-file", type=str, default="", help="path to a yaml config")
    parser.add_argument("-s", "--sources", type=str, nargs="+", help="source datasets")
    parser.add_argument("-t", "--targets", type=str, nargs="+", help="target datasets")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation")
    parser.add_argument("--root", type=str, default="", help="path to the data root")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options with KEY VALUE pairs")


def config_from_args(args: argparse.Namespace) -> CN:
    """defaults -> ``--config-file`` -> ``--root/-s/-t/--transforms`` -> ``KEY VALUE`` opts; frozen."""
    cfg = get_default_config()
    if args.config_file:
        merge_file(cfg, args.config_file)
    if args.root:
        cfg.data.root = args.root
    if args.sources:
        cfg.data.sources = args.sources
    if args.targets:
        cfg.data.targets = args.targets
    if args.transforms:
        cfg.data.transforms = args.transforms
    opts = list(args.opts or [])
    if opts[:1] == ["--"]:  # `--transforms a b -- KEY VALUE` ends the list with --
        opts = opts[1:]
    if opts:
        merge_opts(cfg, opts)
    cfg.freeze()
    return cfg


# ---------------------------------------------------------------- adapters: cfg -> plain kwargs

def imagedata_kwargs(cfg: CN, use_gpu: bool = False) -> dict:
    """Keyword arguments of ``torchreid.data.ImageDataManager``."""
    return {
        "root": cfg.data.root,
        "sources": list(cfg.data.sources),
        "targets": list(cfg.data.targets),
        "height": cfg.data.height,
        "width": cfg.data.width,
        "transforms": list(cfg.data.transforms),
        "k_tfm": cfg.data.k_tfm,
        "norm_mean": list(cfg.data.norm_mean),
        "norm_std": list(cfg.data.norm_std),
        "use_gpu": use_gpu,
        "split_id": cfg.data.split_id,
        "combineall": cfg.data.combineall,
        "load_train_targets": cfg.data.load_train_targets,
        "batch_size_train": cfg.train.batch_size,
        "batch_size_test": cfg.test.batch_size,
        "workers": cfg.data.workers,
        "num_instances": cfg.sampler.num_instances,
        "num_cams": cfg.sampler.num_cams,
        "num_datasets": cfg.sampler.num_datasets,
        "train_sampler": cfg.sampler.train_sampler,
        "train_sampler_t": cfg.sampler.train_sampler_t,
        "cuhk03_labeled": cfg.cuhk03.labeled_images,
        "cuhk03_classic_split": cfg.cuhk03.classic_split,
        "market1501_500k": cfg.market1501.use_500k_distractors,
    }


def optimizer_kwargs(cfg: CN) -> dict:
    """Keyword arguments of ``torchreid.optim.build_optimizer``."""
    return {
        "optim": cfg.train.optim,
        "lr": cfg.train.lr,
        "weight_decay": cfg.train.weight_decay,
        "momentum": cfg.sgd.momentum,
        "sgd_dampening": cfg.sgd.dampening,
        "sgd_nesterov": cfg.sgd.nesterov,
        "rmsprop_alpha": cfg.rmsprop.alpha,
        "adam_beta1": cfg.adam.beta1,
        "adam_beta2": cfg.adam.beta2,
        "staged_lr": cfg.train.staged_lr,
        "new_layers": list(cfg.train.new_layers),
        "base_lr_mult": cfg.train.base_lr_mult,
    }


def lr_scheduler_kwargs(cfg: CN) -> dict:
    """Keyword arguments of ``torchreid.optim.build_lr_scheduler``."""
    stepsize = cfg.train.stepsize
    if cfg.train.lr_scheduler == "single_step" and isinstance(stepsize, (list, tuple)):
        stepsize = stepsize[0]
    return {
        "lr_scheduler": cfg.train.lr_scheduler,
        "stepsize": stepsize,
        "gamma": cfg.train.gamma,
        "max_epoch": cfg.train.max_epoch,
    }


def engine_run_kwargs(cfg: CN) -> dict:
    """Keyword arguments of ``torchreid.engine.Engine.run``."""
    return {
        "save_dir": cfg.data.save_dir,
        "max_epoch": cfg.train.max_epoch,
        "start_epoch": cfg.train.start_epoch,
        "fixbase_epoch": cfg.train.fixbase_epoch,
        "open_layers": list(cfg.train.open_layers),
        "start_eval": cfg.test.start_eval,
        "eval_freq": cfg.test.eval_freq,
        "test_only": cfg.test.evaluate,
        "print_freq": cfg.train.print_freq,
        "dist_metric": cfg.test.dist_metric,
        "normalize_feature": cfg.test.normalize_feature,
        "visrank": cfg.test.visrank,
        "visrank_topk": cfg.test.visrank_topk,
        "use_metric_cuhk03": cfg.cuhk03.use_metric_cuhk03,
        "ranks": list(cfg.test.ranks),
        "rerank": cfg.test.rerank,
    }


_PIXELFADE_KEYS = ("steps", "warmup_steps", "num_masks", "eps", "eps_mode", "momentum", "beta",
                   "beta_temp", "no_replace_last", "loss_reduction", "constraint_scope",
                   "mask_index", "mask_unit", "co_every_step", "clamp", "quantize", "target",
                   "noise_weight", "replacement", "perturb_amplitude", "l1_weight")


def protection_options(cfg: CN) -> dict:
    """Keyword arguments of ``engine.ProtectionOptions`` (the evaluation hook)."""
    node = cfg.pixelfade
    return {"protector": node.protector, "protector_kwargs": protector_kwargs(cfg),
            "protect": list(node.protect),
            "cache_dir": node.cache_dir or f"{cfg.data.save_dir}/pixelfade-cache",
            "batch_size": node.batch_size, "report_setting": node.report_setting,
            "skip_corrupt": node.skip_corrupt}


def protector_kwargs(cfg: CN) -> dict:
    """Keyword arguments of ``build_protector(cfg.pixelfade.protector, model, **kwargs)``."""
    node = cfg.pixelfade
    seed = None if node.seed < 0 else node.seed
    if node.protector == "pixelfade":
        kwargs = {key: node[key] for key in _PIXELFADE_KEYS}
        kwargs["seed"] = seed
        return kwargs
    if node.protector == "avih":
        return {"steps": node.steps, "quantize": node.quantize, "seed": seed}
    if node.protector == "blur":
        return {"sigma": None if node.blur_sigma < 0 else node.blur_sigma}
    if node.protector == "mosaic":
        return {"cell": None if node.mosaic_cell < 0 else node.mosaic_cell}
    return {}
