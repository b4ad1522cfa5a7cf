"""The ``pixelfade`` config node, generated from the protectors' own ``Params`` declarations.

Layout (``configs/*.yaml``, ``KEY VALUE`` overrides)::

    pixelfade.enabled, .protector, .protect, .batch_size, .seed, .cache_dir,
    pixelfade.report_setting, .skip_corrupt,
    pixelfade.on_missed_constraint, .eps_flip_multiple how protection runs (any protector)
    pixelfade.channels_last, .precision, .compile      how the authorised model computes
    pixelfade.<field>                                  PixelFade's hyper-parameters (eps, steps...)
    pixelfade.<name>.<field>                           any other registered protector's, e.g.
                                                       pixelfade.avih.step_size, pixelfade.blur.sigma

Every field comes from ``protector_params(name)``, so a protector registered before
:func:`protection_defaults` runs gets its node with no edit here. ``seed`` is one run option for
every protector that has one (-1: unpredictable noise, seeded from the OS).
"""
from __future__ import annotations

import dataclasses

from yacs.config import CfgNode as CN

from ..models import CHANNELS_LAST, PRECISIONS, resolve_fast_paths
from ..protect import list_protectors, protector_params
from ..store import check_batch_size, check_on_missed_constraint

#: The protector whose hyper-parameters sit directly under ``pixelfade`` (documented keys).
HOME = "pixelfade"
#: Fields that are run options rather than per-protector hyper-parameters.
RUN_LEVEL = ("seed",)


def _run_options() -> CN:
    node = CN()
    node.enabled = False  # protect query/gallery in every evaluation
    node.protector = HOME  # any name of torchreid_pixelfade.list_protectors()
    node.protect = ["query", "gallery"]  # which sides are stored protected
    # images per protector call, or 'auto' (CUDA: the largest that fits; else 32)
    node.batch_size = 32
    node.seed = -1  # -1: noise seeded from the OS; >= 0 reproducible
    node.cache_dir = ""  # where the evaluation hook stores protected images
    node.report_setting = "P2P"  # which setting's Rank-1/mAP evaluation returns
    node.skip_corrupt = False  # skip unreadable images (listed in the manifest) instead of failing
    # stored images that miss d(f(x_p), f(x)) <= eps: 'keep', 'warn' or 'fail' (after storing
    # and recording every image; the manifest marks each, results.json counts them)
    node.on_missed_constraint = "warn"
    # > 0: `protect` calibrates eps per model: this multiple of the median distance between an
    # image's feature and its mirror image's, in eps_mode's units, over the images it protects
    # (protect/calibration.py; the value used is in the manifest); 0: eps as configured
    node.eps_flip_multiple = 0.0
    # fast paths of the authorised model (torchreid_pixelfade.models.resolve_fast_paths; 'auto'
    # enables what was measured faster with equal results on the device, docs/fast_paths.md).
    # Strings, quoted in YAML ('on' unquoted is a YAML boolean): 'auto', 'on' or 'off'
    node.channels_last = "auto"
    node.precision = "auto"  # 'auto', 'fp32', 'tf32' (CUDA), 'bf16' or 'fp16' (autocast)
    node.compile = False  # torch.compile the model (a compile takes 30-330 s)
    return node


def _fields(name: str) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(protector_params(name)) if f.name not in RUN_LEVEL]


def protection_defaults() -> CN:
    """The ``pixelfade`` node: run options, PixelFade's fields, one sub-node per other protector.

    Raises:
        ValueError: if a protector's field or name collides with a run option.
    """
    node = _run_options()
    taken = set(node)
    for name in list_protectors():
        target = node if name == HOME else CN()
        for field in _fields(name):
            if name == HOME and field.name in taken:
                raise ValueError(f"PixelFade parameter {field.name!r} collides with a run option")
            target[field.name] = field.default
        if name != HOME:
            if name in taken or name in node:
                raise ValueError(f"Protector name {name!r} collides with a pixelfade.* key")
            node[name] = target
    return node


def protector_node(cfg: CN, name: str) -> CN:
    """The config node holding protector ``name``'s hyper-parameters."""
    return cfg.pixelfade if name == HOME else cfg.pixelfade[name]


def option_key(name: str, option: str) -> str:
    """The full config key of a protector's option (``('avih', 'steps')`` ->
    ``'pixelfade.avih.steps'``; ``seed`` is the run option ``pixelfade.seed``)."""
    if option in RUN_LEVEL or name == HOME:
        return f"pixelfade.{option}"
    return f"pixelfade.{name}.{option}"


def protector_kwargs(cfg: CN, name: str | None = None) -> dict:
    """Keyword arguments of ``build_protector(name, model, **kwargs)`` (``name`` defaults to
    ``pixelfade.protector``)."""
    name = name or cfg.pixelfade.protector
    node = protector_node(cfg, name)
    kwargs = {f.name: node[f.name] for f in _fields(name)}
    if "seed" in {f.name for f in dataclasses.fields(protector_params(name))}:
        kwargs["seed"] = None if cfg.pixelfade.seed < 0 else cfg.pixelfade.seed
    return kwargs


def check_run_options(cfg: CN) -> None:
    """Validates the run options of the ``pixelfade`` node.

    Raises:
        ValueError: naming the key and the accepted values.
    """
    node = cfg.pixelfade
    check_batch_size(node.batch_size, "pixelfade.batch_size")
    if node.seed < -1:
        raise ValueError(f"pixelfade.seed must be >= 0, or -1 for OS noise; got {node.seed}")
    check_on_missed_constraint(node.on_missed_constraint, "pixelfade.on_missed_constraint")
    if node.eps_flip_multiple < 0:
        raise ValueError(f"pixelfade.eps_flip_multiple must be >= 0 (0: off), got "
                         f"{node.eps_flip_multiple}")
    sides = set(node.protect) - {"query", "gallery"}
    if sides or not node.protect:
        raise ValueError(f"pixelfade.protect takes 'query' and/or 'gallery', got "
                         f"{list(node.protect)}")
    _check_fast_paths(node)


def _check_fast_paths(node: CN) -> None:
    """Validates ``pixelfade.channels_last``, ``.precision`` and ``.compile``."""
    if node.channels_last not in CHANNELS_LAST:
        raise ValueError(f"pixelfade.channels_last must be one of {CHANNELS_LAST}, got "
                         f"{node.channels_last!r}")
    precisions = ("auto", *PRECISIONS)
    if node.precision not in precisions:
        raise ValueError(f"pixelfade.precision must be one of {precisions}, got "
                         f"{node.precision!r}")
    if not isinstance(node.compile, bool):
        raise ValueError(f"pixelfade.compile must be True or False, got {node.compile!r}")


def fast_path_options(cfg: CN) -> dict:
    """Keyword arguments of ``resolve_fast_paths(device, **options)`` (``'auto'`` unresolved:
    the device is chosen by the workflow).

    Raises:
        ValueError: for an invalid value (the key and the valid values are named).
    """
    _check_fast_paths(cfg.pixelfade)
    node = cfg.pixelfade
    return {"channels_last": node.channels_last, "precision": node.precision,
            "compile": node.compile}


def fast_path_kwargs(cfg: CN, device) -> dict:
    """Keyword arguments of ``AuthorizedModel`` for protecting on ``device``: the fast paths
    of ``cfg`` with ``'auto'`` resolved for it (:func:`resolve_fast_paths`)."""
    return resolve_fast_paths(device, **fast_path_options(cfg))


def protection_options(cfg: CN) -> dict:
    """Keyword arguments of ``ProtectionOptions`` (the evaluation hook)."""
    check_run_options(cfg)
    node = cfg.pixelfade
    return {"protector": node.protector, "protector_kwargs": protector_kwargs(cfg),
            "protect": list(node.protect),
            "cache_dir": node.cache_dir or f"{cfg.data.save_dir}/pixelfade-cache",
            "batch_size": node.batch_size, "report_setting": node.report_setting,
            "skip_corrupt": node.skip_corrupt,
            "on_missed_constraint": node.on_missed_constraint,
            "fast_paths": fast_path_options(cfg)}
