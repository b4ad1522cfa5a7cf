"""Library entry points that take a frozen config: train, run, protect, evaluate.

The command line parses arguments into a config and calls these; the demo, the report and the
scripts in ``tools/`` call them too. Each one turns the config into plain values with the small
adapters of :mod:`.config` and hands them to the library, whose classes never see a config.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import torch

from .. import config as C
from .. import distributed
from ..data.layouts import check_dataset
from ..io import atomic_write_bytes, atomic_write_json
from ..config.protection import fast_path_kwargs
from ..models import AuthorizedModel, build_reid_model, load_weights
from ..protect import build_protector
from ..store import (ImageRecord, ProtectedFolder, evenly_spaced, first_identities,
                    protect_records, protection_identity, records_from_dataset)
from .calibration import calibrated_kwargs
from .common import (check_data_root, check_or_warn, check_same_model, default_device,
                     prepare_run, resume_training, single_dataset)

logger = logging.getLogger(__name__)


def build_authorized_model(cfg, weights: str, device: str | torch.device,
                           fast_paths: bool = False) -> AuthorizedModel:
    """The frozen authorised model of ``cfg`` with ``weights`` loaded, on ``device``.

    Args:
        fast_paths: run it with ``pixelfade.channels_last``, ``.precision`` and ``.compile``
            (``'auto'`` resolved for ``device``) as protection does; off, it computes plain
            float32 features as evaluation does.
    """
    net = load_weights(build_reid_model(cfg.model.name, loss=cfg.loss.name), weights)
    options = fast_path_kwargs(cfg, device) if fast_paths else {}
    return AuthorizedModel(net, cfg.data.norm_mean, cfg.data.norm_std, name=cfg.model.name,
                           **options).to(device)


def check_dataset_folders(root: str, names: Sequence[str]) -> None:
    """Checks that each torchreid dataset's folder exists under ``root`` before torchreid sees it
    (torchreid would create folders and try to download a missing dataset).

    Raises:
        FileNotFoundError: naming the path that was expected.
        ValueError: for a name torchreid does not know (the valid ones are listed).
    """
    from .._torchreid import image_datasets

    check_data_root(root)
    registered = image_datasets()
    for name in names:
        if name not in registered:
            raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(registered)}")
        folder = os.path.join(root, getattr(registered[name], "dataset_dir", "") or "")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"dataset {name!r}: expected its folder at {folder!r} "
                                    f"(torchreid's layout under --root {root!r})")


def dataset_records(cfg, splits: Sequence[str] = ("query", "gallery")
                    ) -> tuple[str, list[ImageRecord]]:
    """``(source_root, records)`` of ``splits`` of the (single) target dataset of ``cfg``.

    Raises:
        FileNotFoundError: if the dataset's folder is missing.
        ValueError: for an unreadable dataset (its folder and the problem are named).
    """
    from .._torchreid import tr

    name = single_dataset(cfg.data.targets, "target")
    check_dataset_folders(cfg.data.root, [name])
    check_dataset(name, cfg.data.root)
    try:
        dataset = tr.data.datasets.init_image_dataset(name, **C.dataset_kwargs(cfg),
                                                      mode="query", verbose=False)
    except (AssertionError, AttributeError, IndexError, KeyError, RuntimeError) as error:
        raise ValueError(f"dataset {name!r} under {cfg.data.root!r} cannot be read by "
                         f"torchreid ({type(error).__name__}: {error}); check that every split "
                         f"folder holds images named as the dataset's layout requires") from error
    return records_from_dataset(dataset, splits)


def protect_dataset(cfg, weights: str, out_dir: str, splits: Sequence[str] = ("query", "gallery"),
                    device: str | torch.device = "cpu", progress: bool = True,
                    limit: int | None = None, max_ids: int | None = None) -> ProtectedFolder:
    """Protects ``splits`` of the target dataset of ``cfg`` into ``out_dir``.

    With ``data.type visible_infrared`` the infrared images of ``splits`` are protected (test:
    the gallery of RGB-to-IR search; train: the source's IR training images); the authorised
    model is the thermal path. With ``data.type text_image`` the test gallery (or, for
    ``train``, the training images) with the dual encoder's image encoder.
    Under torchrun each rank protects a disjoint shard of the images on its own device into its
    own manifest part; the folder is complete and merged when every rank has returned.

    Args:
        limit: keep at most that many images per split (evenly spaced), e.g. an attacker's subset.
        max_ids: keep the images of the first identities only (a query/gallery subset).

    Returns:
        The protected folder (on every rank: as merged when this rank finished).
    """
    name = cfg.data.targets[0] if len(cfg.data.targets) == 1 else ""
    C.check_run_options(cfg)
    context = distributed.context_from_env()
    device = distributed.rank_device(context, device)
    if C.check_data_type(cfg) == "visible_infrared":
        from .visible_infrared import infrared_records, vi_models

        source_root, records = infrared_records(cfg, splits)
        model = vi_models(cfg, weights, device, fast_paths=True)[1]
    elif C.check_data_type(cfg) == "text_image":
        from .text_image import gallery_records_of, t2i_models

        source_root, records = gallery_records_of(cfg, splits)
        model = t2i_models(cfg, weights, device, fast_paths=True)[0]
    else:
        source_root, records = dataset_records(cfg, splits)
        model = build_authorized_model(cfg, weights, device, fast_paths=True)
    records = evenly_spaced(first_identities(records, max_ids), limit)
    with distributed.process_group(context, device):
        kwargs, calibration = calibrated_kwargs(cfg, model, records, out_dir, device)
        protector = build_protector(cfg.pixelfade.protector, model, **kwargs)
        identity = protection_identity(protector, model, weights, cfg.data.height,
                                       cfg.data.width, name, eps_calibration=calibration)
        shard = distributed.shard(records, context)
        logger.info("protecting %d of %d images of %s with %r", len(shard), len(records),
                    name, protector)
        folder = protect_records(protector, shard, out_dir, identity, source_root,
                                 batch_size=cfg.pixelfade.batch_size, device=device,
                                 skip_corrupt=cfg.pixelfade.skip_corrupt,
                                 progress=progress and context.rank == 0, part=context.rank,
                                 on_missed_constraint=cfg.pixelfade.on_missed_constraint)
    return ProtectedFolder.open(out_dir) if context.distributed else folder


def evaluate_folder(cfg, weights: str, protected: str, json_path: str | None = None,
                    device: str | torch.device = "cpu", allow_other_weights: bool = False,
                    source_root: str | None = None):
    """Evaluates a protected folder with ``cfg``'s test options; writes ``json_path`` and a
    markdown table beside it when given.

    The model and weights must be the ones the folder was protected with (see
    :func:`check_same_model`) unless ``allow_other_weights``; results are always labelled with
    the model and weights actually used. ``source_root`` replaces the originals' folder the
    manifest records (a folder from elsewhere is untrusted: its paths stay confined either way).

    Returns:
        The :class:`~torchreid_pixelfade.evaluation.EvaluationResult`.
    """
    from ..evaluation import evaluate_folder as evaluate
    from ..store import file_sha256

    folder = ProtectedFolder.open(protected, source_root=source_root)
    if C.check_data_type(cfg) == "visible_infrared":
        from .visible_infrared import evaluate_vi_folder

        result = evaluate_vi_folder(cfg, weights, folder, device, allow_other_weights)
    elif C.check_data_type(cfg) == "text_image":
        from .text_image import evaluate_t2i_folder

        result = evaluate_t2i_folder(cfg, weights, folder, device, allow_other_weights)
    else:
        check_or_warn(folder, cfg.model.name, weights, allow_other_weights)
        model = build_authorized_model(cfg, weights, device)
        result = evaluate(model, folder, **C.evaluation_kwargs(cfg), device=device)
    result.weights_sha256 = file_sha256(weights)
    if json_path:
        result.write(json_path)
        logger.info("results written to %s\n%s", json_path, result.to_markdown())
    return result


def _write_hook_results(cfg, results: dict) -> None:
    from ..evaluation import results_markdown

    single = next(iter(results.values())) if len(results) == 1 else results
    path = os.path.join(cfg.data.save_dir, "results.json")
    atomic_write_json(path, single)
    atomic_write_bytes(os.path.join(cfg.data.save_dir, "results.md"), "\n".join(
        f"## {name}\n\n{results_markdown(r)}" for name, r in results.items()).encode())
    logger.info("four-setting results written to %s", path)


def run(cfg, device: str | torch.device = "cpu"):
    """torchreid's ``scripts/main.py``: train and/or test, with protection when enabled.

    Returns:
        The engine; with ``pixelfade.enabled`` its ``pixelfade_results`` hold, per target, the
        ``results.json`` dictionary, also written to ``data.save_dir``.
    """
    if C.check_data_type(cfg) == "visible_infrared":
        from .visible_infrared import run_vi

        return run_vi(cfg, device)
    if C.check_data_type(cfg) == "text_image":
        from .text_image import run_t2i

        return run_t2i(cfg, device)
    from .._torchreid import tr
    from ..data.protected import register_datasets
    from ..engines.image import (PixelFadeTransform, ProtectionOptions, enable_pixelfade,
                                install_transform, split_transform_names)
    from ..engines.image.training import build_training

    register_datasets()  # protected folders as sources/targets: `pixelfade_protected`
    names = list(dict.fromkeys([*cfg.data.sources, *cfg.data.targets]))
    check_dataset_folders(cfg.data.root, names)
    for name in names:
        check_dataset(name, cfg.data.root)
    use_gpu = torch.device(device).type == "cuda"
    data_kwargs = C.imagedata_kwargs(cfg, use_gpu=use_gpu)
    data_kwargs["transforms"], per_image = split_transform_names(cfg.data.transforms)
    if cfg.pixelfade.eps_flip_multiple and (cfg.pixelfade.enabled or per_image):
        raise ValueError("pixelfade.eps_flip_multiple is applied by `protect` only; the "
                         "evaluation hook and the transform use pixelfade.eps as configured "
                         "(set the eps `protect` logged, or protect, then evaluate)")
    datamanager = tr.data.ImageDataManager(**data_kwargs)
    engine = build_training(datamanager, cfg.model.name, cfg.loss.name, C.optimizer_kwargs(cfg),
                            C.lr_scheduler_kwargs(cfg), warmup_epochs=cfg.train.warmup_epochs,
                            pretrained=cfg.model.pretrained, loss_kwargs=C.loss_kwargs(cfg),
                            device=device)
    run_kwargs = C.engine_run_kwargs(cfg)
    if cfg.model.load_weights:
        load_weights(engine.model, cfg.model.load_weights)
    if cfg.model.resume:
        run_kwargs["start_epoch"] = resume_training(engine, cfg.model.resume)
    if per_image:
        install_transform(datamanager, PixelFadeTransform(
            engine.model, cfg.pixelfade.protector, **C.protector_kwargs(cfg)))
    if cfg.pixelfade.enabled:
        enable_pixelfade(engine, ProtectionOptions(**C.protection_options(cfg)))
    engine.run(**run_kwargs)
    if cfg.pixelfade.enabled:
        _write_hook_results(cfg, engine.pixelfade_results)
    return engine


def train(cfg, device: str | torch.device = "cpu") -> str:
    """Trains the authorised model of ``cfg``; returns the path of the saved ``model.pth``."""
    if cfg.test.evaluate:
        raise ValueError("train with test.evaluate True would not train; use `run` to test")
    if C.check_data_type(cfg) == "visible_infrared":
        from .visible_infrared import train_vi

        return train_vi(cfg, device)
    if C.check_data_type(cfg) == "text_image":
        from .text_image import train_t2i

        return train_t2i(cfg, device)
    engine = run(cfg, device)
    path = os.path.join(cfg.data.save_dir, engine.weights_name)
    logger.info("best Rank-1 %.4f; weights: %s", engine.best_rank1, path)
    return path


__all__ = ["build_authorized_model", "check_data_root", "check_dataset_folders", "check_or_warn",
           "check_same_model", "dataset_records", "default_device", "evaluate_folder",
           "prepare_run", "protect_dataset", "resume_training", "run", "single_dataset", "train"]
