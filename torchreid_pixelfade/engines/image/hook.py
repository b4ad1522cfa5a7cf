"""The evaluation hook: protected query/gallery and the four settings in any torchreid engine.

Two lines in an existing torchreid script::

    from torchreid_pixelfade import enable_pixelfade
    engine = enable_pixelfade(engine, cache_dir="log/pixelfade")   # any Engine subclass instance

From then on every evaluation of ``engine`` (periodic ones during training and ``test_only``)
protects the query and gallery images in batches, stores them as PNG through the same image store
as the ``protect`` command (in ``cache_dir``, keyed by a hash of the model's weights and the
protection settings, so an unchanged model is never protected twice), re-reads them through the
engine's own test transform and ``extract_features``, and reports O2O, P2P, O2P and P2O with
Rank-k, mAP and mINP. ``dist_metric``, ``normalize_feature`` and ``rerank`` act as in torchreid;
``_evaluate`` returns ``(rank1, mAP)`` of ``report_setting`` for torchreid's model selection.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from ...constants import IMAGENET_MEAN, IMAGENET_STD
from ...evaluation import SETTINGS, evaluate_settings, folder_result
from ...io import read_image
from ...models import AuthorizedModel, frozen, resolve_fast_paths
from ...protect import Protector, build_protector
from ...store import (ProtectedFolder, check_batch_size, check_on_missed_constraint,
                      protect_records, protection_identity, records_from_items)

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ProtectionOptions:
    """What the hook protects and how (plain values; the CLI fills them from the config).

    Attributes:
        protector: a registered protector name or a protector object.
        protector_kwargs: hyper-parameters for a protector given by name.
        protect: which sides are stored protected ('query', 'gallery'); the other side's
            "protected" features are its original ones.
        cache_dir: where protected images are stored and reused.
        batch_size: images per protector call, or ``'auto'`` (see
            :func:`~torchreid_pixelfade.store.protect_records`).
        report_setting: the setting whose (Rank-1, mAP) ``_evaluate`` returns.
        skip_corrupt: skip unreadable images instead of failing.
        on_missed_constraint: 'keep', 'warn' or 'fail' on stored images that miss the
            feature bound (see :func:`~torchreid_pixelfade.store.protect_records`).
        progress: show a progress bar while protecting.
        fast_paths: arguments of :func:`~torchreid_pixelfade.models.resolve_fast_paths`
            (``channels_last``, ``precision``, ``compile``) for the authorised model, resolved
            on the engine model's device; empty: plain float32. ``channels_last`` converts
            the engine's model to channels-last memory format in place (values unchanged).
    """

    protector: str | Protector = "pixelfade"
    protector_kwargs: dict = dataclasses.field(default_factory=dict)
    protect: Sequence[str] = ("query", "gallery")
    cache_dir: str = "pixelfade-cache"
    batch_size: int | str = 32
    report_setting: str = "P2P"
    skip_corrupt: bool = False
    on_missed_constraint: str = "warn"
    progress: bool = True
    fast_paths: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.report_setting not in SETTINGS:
            raise ValueError(f"report_setting must be one of {SETTINGS}, "
                             f"got {self.report_setting!r}")
        unknown = set(self.protect) - {"query", "gallery"}
        if unknown:
            raise ValueError(f"protect takes 'query' and/or 'gallery', got {sorted(unknown)}")
        check_batch_size(self.batch_size)
        check_on_missed_constraint(self.on_missed_constraint)
        if self.fast_paths:  # validates the values (ValueError; TypeError for unknown keys)
            resolve_fast_paths("cpu", **self.fast_paths)


class _ImageFiles(Dataset):
    """Image files through a torchreid test transform, as torchreid's eval batches (dicts)."""

    def __init__(self, items: Sequence[tuple], transform) -> None:
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path, pid, camid = self.items[index][:3]
        return {"img": self.transform(read_image(path)), "pid": pid, "camid": camid,
                "impath": path, "dsetid": 0}


def normalization_of(transform) -> tuple[list[float], list[float]]:
    """Mean and std of the ``Normalize`` step of a torchvision ``Compose`` (ImageNet if none)."""
    for step in getattr(transform, "transforms", []):
        if isinstance(step, T.Normalize):
            return list(step.mean), list(step.std)
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


class PixelFadeEvalMixin:
    """Mixin for torchreid engines; see :func:`enable_pixelfade` and the module docstring."""

    pixelfade_options: ProtectionOptions
    pixelfade_results: dict

    # ------------------------------------------------------------ features

    def _model_device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _loader_features(self, loader) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        features, pids, camids = [], [], []
        for data in loader:
            images, batch_pids, batch_camids = self.parse_data_for_eval(data)
            features.append(self.extract_features(images.to(self._model_device())).cpu())
            pids.extend(batch_pids.tolist())
            camids.extend(batch_camids.tolist())
        return torch.cat(features), np.asarray(pids), np.asarray(camids)

    def _protected_loader(self, loader, folder: ProtectedFolder, split: str) -> DataLoader:
        """The stored images of ``split`` in the order of ``loader`` (its dataset's items)."""
        by_original = {folder.original_path(e): folder.protected_path(e)
                       for e in folder.entries(split)}
        items = [(by_original[os.path.abspath(item[0])], *item[1:3])
                 for item in loader.dataset.data if os.path.abspath(item[0]) in by_original]
        return DataLoader(_ImageFiles(items, loader.dataset.transform),
                          batch_size=loader.batch_size, shuffle=False, num_workers=0)

    # ------------------------------------------------------------ protection

    def _protect_dataset(self, dataset_name: str, loaders: dict) -> ProtectedFolder:
        """Protects the configured sides into the cache; returns the folder."""
        options = self.pixelfade_options
        mean, std = normalization_of(loaders["query"].dataset.transform)
        height, width = self.datamanager.height, self.datamanager.width
        fast_paths = (resolve_fast_paths(self._model_device(), **options.fast_paths)
                      if options.fast_paths else {})
        with frozen(self.model):
            model = AuthorizedModel(self.model, mean, std, name=type(self.model).__name__,
                                    freeze=False, **fast_paths)
            protector = build_protector(options.protector, model, **options.protector_kwargs)
            identity = protection_identity(protector, model, self.model, height, width,
                                           dataset_name)
            sides = "+".join(side for side in ("query", "gallery") if side in options.protect)
            out_dir = os.path.join(options.cache_dir, dataset_name, f"{identity.key()}-{sides}")
            source_root, records = records_from_items(
                {side: loaders[side].dataset.data for side in options.protect})
            logger.info("%s: protecting %d images with %r into %s", dataset_name, len(records),
                        protector, out_dir)
            return protect_records(protector, records, out_dir, identity, source_root,
                                   options.batch_size, self._model_device(),
                                   options.skip_corrupt, progress=options.progress,
                                   on_missed_constraint=options.on_missed_constraint)

    # ------------------------------------------------------------ torchreid hook

    def _evaluate(self, dataset_name: str = "", query_loader=None, gallery_loader=None,
                  dist_metric: str = "euclidean", normalize_feature: bool = False,
                  visrank: bool = False, visrank_topk: int = 10, save_dir: str = "",
                  use_metric_cuhk03: bool = False, ranks: Sequence[int] = (1, 5, 10, 20),
                  rerank: bool = False):
        """torchreid's ``_evaluate`` with the four settings; returns (rank1, mAP) of the
        report setting. ``visrank`` and the CUHK03 metric are not supported here (logged)."""
        if visrank or use_metric_cuhk03:
            logger.warning("visrank and use_metric_cuhk03 are ignored with protection; the "
                           "Market-1501 protocol is used")
        loaders = {"query": query_loader, "gallery": gallery_loader}
        folder = self._protect_dataset(dataset_name, loaders)
        features, labels = {}, {}
        for side, loader in loaders.items():
            original, pids, camids = self._loader_features(loader)
            protected = original
            if side in self.pixelfade_options.protect:
                protected = self._loader_features(
                    self._protected_loader(loader, folder, side))[0]
            features[side] = {"original": original, "protected": protected}
            labels[side] = (pids, camids)
        settings = evaluate_settings(features["query"], features["gallery"], labels["query"],
                                     labels["gallery"], metric=dist_metric,
                                     normalize=normalize_feature, ranks=ranks, rerank=rerank)
        result = folder_result(folder, settings, len(labels["query"][0]),
                               len(labels["gallery"][0]), folder.identity.model,
                               dataset=dataset_name, protected_dir=folder.path)
        self.pixelfade_results[dataset_name] = result.to_dict()
        logger.info("** %s: four settings (protected images in %s) **\n%s", dataset_name,
                    folder.path, result.to_markdown())
        report = settings[self.pixelfade_options.report_setting]
        return report["rank1"], report["mAP"]


def enable_pixelfade(engine, options: ProtectionOptions | None = None, **kwargs):
    """Turns protection on in every evaluation of a torchreid ``engine`` (in place).

    Args:
        engine: an instance of any torchreid ``Engine`` subclass.
        options: a :class:`ProtectionOptions`; or give its fields as keyword arguments.

    Returns:
        The same engine, now an instance of a subclass with :class:`PixelFadeEvalMixin`;
        after each evaluation ``engine.pixelfade_results[dataset_name]`` holds the results
        dictionary (``results.json`` schema, ``EvaluationResult.to_dict()``).

    Raises:
        RuntimeError: if torchreid's ``Engine._evaluate`` changed its parameters.
    """
    from ..._torchreid import check_evaluate_signature

    check_evaluate_signature()
    options = options or ProtectionOptions(**kwargs)
    cls = type(engine)
    if not isinstance(engine, PixelFadeEvalMixin):
        engine.__class__ = type(f"PixelFade{cls.__name__}", (PixelFadeEvalMixin, cls), {})
    engine.pixelfade_options = options
    engine.pixelfade_results = {}
    return engine
