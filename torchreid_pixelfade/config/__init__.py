"""Configuration at the edge: torchreid's yacs defaults plus a ``pixelfade`` node, and adapters.

The flow is the one of torchreid's ``scripts/main.py``: :func:`get_default_config` ->
``--config-file`` -> ``--root/-s/-t/--transforms`` -> trailing ``KEY VALUE`` overrides, then small
adapter functions turn the frozen config into plain keyword dicts. Library classes never see a
config object; nothing below :mod:`torchreid_pixelfade.workflows` imports this package.
"""
from __future__ import annotations

import argparse

from yacs.config import CfgNode as CN

from .engines import (DATA_TYPES, check_data_type, t2i_training_kwargs, text_image_defaults,
                      vi_evaluation_kwargs, vi_training_kwargs, visible_infrared_defaults)
from .merge import (add_torchreid_arguments, merge_args, merge_file, merge_opts,
                    parse_overrides, parse_value)
from .protection import (check_run_options, option_key, protection_defaults, protection_options, protector_kwargs,
                         protector_node)
from .torchreid import (dataset_kwargs, engine_run_kwargs, evaluation_kwargs, imagedata_kwargs,
                        loss_kwargs, lr_scheduler_kwargs, optimizer_kwargs, torchreid_defaults)


def get_default_config() -> CN:
    """torchreid's default configuration plus the ``pixelfade`` node (not frozen)."""
    cfg = torchreid_defaults()
    cfg.pixelfade = protection_defaults()
    cfg.visible_infrared = visible_infrared_defaults()
    cfg.text_image = text_image_defaults()
    return cfg


def config_from_args(args: argparse.Namespace) -> CN:
    """defaults -> ``--config-file`` -> ``--root/-s/-t/--transforms`` -> ``KEY VALUE`` opts;
    frozen."""
    return merge_args(get_default_config(), args)


__all__ = ["DATA_TYPES", "check_data_type", "vi_evaluation_kwargs", "vi_training_kwargs",
           "visible_infrared_defaults", "t2i_training_kwargs", "text_image_defaults",
           "get_default_config", "config_from_args", "add_torchreid_arguments", "merge_args",
           "merge_file", "merge_opts", "parse_overrides", "parse_value", "check_run_options", "option_key",
           "protection_defaults", "protection_options", "protector_kwargs", "protector_node",
           "dataset_kwargs", "engine_run_kwargs", "evaluation_kwargs", "imagedata_kwargs",
           "loss_kwargs", "lr_scheduler_kwargs", "optimizer_kwargs", "torchreid_defaults"]
