"""The visible-infrared scenario (``data.type visible_infrared``) from a frozen config.

Dataset names follow the registered torchreid datasets: ``sysu_mm01`` (``visible_infrared.mode``),
``sysu_mm01_indoor``, ``regdb`` (trial 1) and ``regdb_trial<N>``. The authorised model of
protection is the thermal path of the two-stream net (its un-normalised ``visible_infrared.feature``);
RGB images are never protected.
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch

from .. import config as C
from ..config.protection import fast_path_kwargs
from ..models import load_weights
from .common import (check_data_root, check_or_warn, run_scenario_engine, single_dataset,
                     trained_weights)

logger = logging.getLogger(__name__)

SYSU_NAMES = ("sysu_mm01", "sysu_mm01_indoor")


def read_vi_dataset(cfg, name: str):
    """``SysuMM01Data`` or ``RegDBData`` of the dataset called ``name`` under ``data.root``.

    Raises:
        ValueError: for a name that is not a visible-infrared dataset (the valid ones are listed).
    """
    from ..engines.visible_infrared.datasets import read_regdb, read_sysu_mm01

    check_data_root(cfg.data.root)
    if name in SYSU_NAMES:
        mode = "indoor" if name.endswith("indoor") else cfg.visible_infrared.mode
        return read_sysu_mm01(cfg.data.root, mode)
    trial = name[len("regdb_trial"):] if name.startswith("regdb_trial") else ""
    if name == "regdb" or trial.isdigit():
        return read_regdb(cfg.data.root, int(trial or 1))
    raise ValueError(f"data.type visible_infrared: unknown dataset {name!r}; choose sysu_mm01, "
                     f"sysu_mm01_indoor, regdb or regdb_trial1..regdb_trial10")


def vi_test_set(cfg):
    """The test set of the (single) target: the SYSU-MM01 test set or the RegDB trial."""
    data = read_vi_dataset(cfg, single_dataset(cfg.data.targets, "target"))
    return data.test if hasattr(data, "test") else data


def vi_train_records(cfg) -> list:
    """Training records of both modalities of the (single) source dataset."""
    return read_vi_dataset(cfg, single_dataset(cfg.data.sources, "source")).train


def vi_models(cfg, weights: str, device: str | torch.device, fast_paths: bool = False):
    """``(visible, infrared)`` authorised models of the two-stream ``model.name`` with
    ``weights`` (the thermal path's un-normalised ``visible_infrared.feature``).

    Args:
        fast_paths: run the infrared model with ``pixelfade.channels_last``, ``.precision``
            and ``.compile`` (``'auto'`` resolved for ``device``) as protection does (the
            visible model then shares a channels-last net; use it for nothing else); off,
            both compute plain float32 features as evaluation does.
    """
    from ..engines.visible_infrared.model import build_vi_model
    from ..engines.visible_infrared.task import infrared_model, visible_model

    net = load_weights(build_vi_model(cfg.model.name, num_classes=1), weights).to(device)
    feature, norm = cfg.visible_infrared.feature, (cfg.data.norm_mean, cfg.data.norm_std)
    options = fast_path_kwargs(cfg, device) if fast_paths else {}
    return (visible_model(net, *norm, feature=feature),
            infrared_model(net, *norm, feature=feature, **options))


def infrared_records(cfg, splits: Sequence[str] = ("query", "gallery")) -> tuple[str, list]:
    """``(dataset folder, records)`` of the infrared images protection stores: the IR test
    images for ``query``/``gallery`` (the gallery of RGB-to-IR search, the probe of SYSU's
    official direction), the source's IR training images for ``train`` (an attacker's pairs).

    Raises:
        ValueError: for a mix of ``train`` and test splits, or an unknown split.
    """
    from ..engines.visible_infrared.datasets import INFRARED
    from ..engines.visible_infrared.task import infrared_test_records

    splits = set(splits)
    if splits == {"train"}:
        data = read_vi_dataset(cfg, single_dataset(cfg.data.sources, "source"))
        return data.dataset_dir, [r for r in data.train if r.modality == INFRARED]
    if not splits or not splits <= {"query", "gallery"}:
        raise ValueError(f"data.type visible_infrared protects the IR test images (query, "
                         f"gallery) or the IR training images (train), not {sorted(splits)}")
    test_set = vi_test_set(cfg)
    return test_set.dataset_dir, infrared_test_records(test_set)


def evaluate_vi_folder(cfg, weights: str, folder, device: str | torch.device = "cpu",
                       allow_other_weights: bool = False):
    """The :class:`VIEvaluationResult` of ``folder`` (protected IR test images) under the VI
    protocol of ``cfg``, refusing a folder made with another model unless
    ``allow_other_weights`` (see :func:`~.common.check_same_model`)."""
    from ..engines.visible_infrared.task import evaluate_vi

    visible, model = vi_models(cfg, weights, device)
    check_or_warn(folder, model.name, weights, allow_other_weights)
    return evaluate_vi(visible, model, folder, vi_test_set(cfg), **C.vi_evaluation_kwargs(cfg),
                       device=device)


def build_vi_training(cfg, device: str | torch.device = "cpu"):
    """The :class:`VIEngine` of ``cfg``: paired sampler on the source's training records, the
    two-stream ``model.name`` with one class per training identity, torchreid's optimiser and
    scheduler from ``train.*`` with ``train.warmup_epochs`` of linear warm-up (the AGW configs
    spell AGW's recipe in these keys: SGD, nesterov, ``staged_lr`` with the trunk at 0.1x)."""
    from .._torchreid import tr
    from ..engines.image.training import with_warmup
    from ..engines.visible_infrared.engine import VIEngine, build_vi_datamanager
    from ..engines.visible_infrared.model import build_vi_model

    options = C.vi_training_kwargs(cfg)
    manager = build_vi_datamanager(vi_train_records(cfg), vi_test_set(cfg), cfg.data.height,
                                   cfg.data.width, mean=cfg.data.norm_mean,
                                   std=cfg.data.norm_std, name=cfg.data.sources[0],
                                   **options["data"])
    model = build_vi_model(cfg.model.name, num_classes=manager.num_train_pids).to(device)
    if cfg.model.load_weights:
        load_weights(model, cfg.model.load_weights)
    optimizer = tr.optim.build_optimizer(model, **C.optimizer_kwargs(cfg))
    scheduler = with_warmup(tr.optim.build_lr_scheduler(optimizer, **C.lr_scheduler_kwargs(cfg)),
                            optimizer, cfg.train.warmup_epochs)
    return VIEngine(manager, model, optimizer, scheduler,
                    use_gpu=torch.device(device).type == "cuda", **options["engine"])


def run_vi(cfg, device: str | torch.device = "cpu"):
    """Trains (and tests O2O under the VI protocol), or only tests with ``test.evaluate``;
    protection is a separate step (``protect``, then ``evaluate``).

    Returns:
        The engine; ``engine.last_results`` holds the last test.
    """
    return run_scenario_engine(cfg, build_vi_training(cfg, device), "the IR test images")


def train_vi(cfg, device: str | torch.device = "cpu") -> str:
    """Trains the two-stream net of ``cfg``; returns the path of the saved ``model.pth``."""
    return trained_weights(cfg, run_vi(cfg, device))
