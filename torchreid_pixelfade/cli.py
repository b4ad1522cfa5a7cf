"""The ``torchreid-pixelfade`` command line: train, run, protect, evaluate, attack, demo.

Each command parses torchreid-style arguments (``--config-file``, ``--root``, ``-s``, ``-t``,
trailing ``KEY VALUE`` overrides), builds a frozen config and hands plain keyword arguments to
library functions.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

import torch

from . import config as C

logger = logging.getLogger("torchreid_pixelfade")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _setup(cfg, args) -> None:
    from ._torchreid import tr

    os.makedirs(cfg.data.save_dir, exist_ok=True)
    with open(os.path.join(cfg.data.save_dir, "config.yaml"), "w") as handle:
        handle.write(cfg.dump())
    tr.utils.set_random_seed(cfg.train.seed)
    logger.info("device %s; config written to %s", args.device,
                os.path.join(cfg.data.save_dir, "config.yaml"))


def loss_kwargs(cfg) -> dict:
    if cfg.loss.name == "triplet":
        return {"margin": cfg.loss.triplet.margin, "weight_t": cfg.loss.triplet.weight_t,
                "weight_x": cfg.loss.triplet.weight_x,
                "label_smooth": cfg.loss.softmax.label_smooth}
    return {"label_smooth": cfg.loss.softmax.label_smooth}


def train_from_config(cfg, device: str) -> str:
    """Trains the authorised model of ``cfg``; returns the path of the saved ``model.pth``."""
    if cfg.test.evaluate:
        raise ValueError("train with test.evaluate True would not train; use `run` to test")
    engine = run_from_config(cfg, device)
    path = os.path.join(cfg.data.save_dir, engine.weights_name)
    logger.info("best Rank-1 %.4f; weights: %s", engine.best_rank1, path)
    return path


def authorized_model(cfg, weights: str, device: str):
    """The frozen authorised model of ``cfg`` with ``weights`` loaded, on ``device``."""
    from .models import AuthorizedModel, build_reid_model, load_weights

    net = load_weights(build_reid_model(cfg.model.name, loss=cfg.loss.name), weights)
    return AuthorizedModel(net, cfg.data.norm_mean, cfg.data.norm_std, name=cfg.model.name).to(device)


def target_records(cfg, splits=("query", "gallery")):
    """``(source_root, records)`` of ``splits`` of the (single) target dataset of ``cfg``."""
    from ._torchreid import tr
    from .store import records_from_dataset

    if len(cfg.data.targets) != 1:
        raise ValueError(f"Expected one target dataset, got {list(cfg.data.targets)}")
    dataset = tr.data.datasets.init_image_dataset(
        cfg.data.targets[0], root=cfg.data.root, mode="query", verbose=False,
        split_id=cfg.data.split_id, cuhk03_labeled=cfg.cuhk03.labeled_images,
        cuhk03_classic_split=cfg.cuhk03.classic_split,
        market1501_500k=cfg.market1501.use_500k_distractors)
    return records_from_dataset(dataset, splits)


def evenly_spaced(records: list, limit: int | None) -> list:
    """At most ``limit`` records per split, evenly spaced (deterministic; spans identities)."""
    if not limit:
        return records
    chosen = []
    for split in dict.fromkeys(r.split for r in records):
        items = [r for r in records if r.split == split]
        step = max(1, len(items) / limit)
        chosen += [items[int(i * step)] for i in range(min(limit, len(items)))]
    return chosen


def first_identities(records: list, max_ids: int | None) -> list:
    """Records of the first ``max_ids`` identities (all their images in every split), so a
    query/gallery subset keeps its matches."""
    if not max_ids:
        return records
    kept = sorted({r.pid for r in records})[:max_ids]
    return [r for r in records if r.pid in set(kept)]


def protect_from_config(cfg, weights: str, out_dir: str, splits, device: str,
                        progress: bool = True, limit: int | None = None,
                        max_ids: int | None = None) -> dict:
    """Protects ``splits`` of the target dataset of ``cfg`` into ``out_dir``; returns the manifest.

    ``limit`` keeps at most that many images per split (evenly spaced), e.g. an attacker's subset;
    ``max_ids`` keeps the images of the first identities only (a query/gallery subset).
    """
    from .models import file_sha256
    from .protect import build_protector
    from .store import protect_records

    name = cfg.data.targets[0]
    source_root, records = target_records(cfg, splits)
    records = evenly_spaced(first_identities(records, max_ids), limit)
    model = authorized_model(cfg, weights, device)
    protector = build_protector(cfg.pixelfade.protector, model, **C.protector_kwargs(cfg))
    logger.info("protecting %d images of %s with %r", len(records), name, protector)
    settings = {"protector": protector.name, "hparams": protector.hparams(),
                "model": cfg.model.name, "weights_sha256": file_sha256(weights),
                "height": cfg.data.height, "width": cfg.data.width, "dataset": name}
    return protect_records(protector, records, out_dir, settings, source_root, cfg.data.height,
                           cfg.data.width, batch_size=cfg.pixelfade.batch_size, device=device,
                           skip_corrupt=cfg.pixelfade.skip_corrupt, progress=progress)


def evaluate_to_files(cfg, weights: str, protected: str, json_path: str, device: str) -> dict:
    """Evaluates a protected folder; writes ``json_path`` and a markdown table beside it."""
    from .evaluation import evaluate_protected, results_markdown
    from .io import atomic_write_bytes, atomic_write_json

    model = authorized_model(cfg, weights, device)
    results = evaluate_protected(model, protected, metric=cfg.test.dist_metric,
                                 normalize=cfg.test.normalize_feature, ranks=cfg.test.ranks,
                                 batch_size=cfg.test.batch_size, device=device)
    table = results_markdown(results)
    atomic_write_json(json_path, results)
    atomic_write_bytes(os.path.splitext(json_path)[0] + ".md", table.encode())
    logger.info("results written to %s\n%s", json_path, table)
    return results


def _resume(engine, path: str) -> int:
    """Loads a torchreid checkpoint (model, optimizer, epoch); returns the epoch to start at."""
    from .models import _torch_load, load_weights

    checkpoint = _torch_load(path)
    load_weights(engine.model, path)
    if checkpoint.get("optimizer"):
        engine.optimizer.load_state_dict(checkpoint["optimizer"])
    logger.info("resumed %s at epoch %d", path, checkpoint.get("epoch", 0))
    return int(checkpoint.get("epoch", 0))


def run_from_config(cfg, device: str):
    """torchreid's ``scripts/main.py``: train and/or test, with protection when enabled.

    Returns:
        The engine; with ``pixelfade.enabled`` its ``pixelfade_results`` hold, per target, the
        ``results.json`` dictionary, also written to ``data.save_dir``.
    """
    from ._torchreid import tr
    from .engine import ProtectionOptions, enable_pixelfade
    from .io import atomic_write_bytes, atomic_write_json
    from .evaluation import results_markdown
    from .models import load_weights
    from .training import build_training
    from .transforms import PixelFadeTransform, install_transform, split_transform_names

    use_gpu = torch.device(device).type == "cuda"
    data_kwargs = C.imagedata_kwargs(cfg, use_gpu=use_gpu)
    data_kwargs["transforms"], per_image = split_transform_names(cfg.data.transforms)
    datamanager = tr.data.ImageDataManager(**data_kwargs)
    engine = build_training(datamanager, cfg.model.name, cfg.loss.name, C.optimizer_kwargs(cfg),
                            C.lr_scheduler_kwargs(cfg), warmup_epochs=cfg.train.warmup_epochs,
                            pretrained=cfg.model.pretrained, loss_kwargs=loss_kwargs(cfg),
                            device=device)
    run_kwargs = C.engine_run_kwargs(cfg)
    if cfg.model.load_weights:
        load_weights(engine.model, cfg.model.load_weights)
    if cfg.model.resume:
        run_kwargs["start_epoch"] = _resume(engine, cfg.model.resume)
    if per_image:
        install_transform(datamanager, PixelFadeTransform(
            engine.model, cfg.pixelfade.protector, **C.protector_kwargs(cfg)))
    if cfg.pixelfade.enabled:
        enable_pixelfade(engine, ProtectionOptions(**C.protection_options(cfg)))
    engine.run(**run_kwargs)
    if cfg.pixelfade.enabled:
        results = engine.pixelfade_results
        single = next(iter(results.values())) if len(results) == 1 else results
        path = os.path.join(cfg.data.save_dir, "results.json")
        atomic_write_json(path, single)
        atomic_write_bytes(os.path.join(cfg.data.save_dir, "results.md"), "\n".join(
            f"## {name}\n\n{results_markdown(r)}" for name, r in results.items()).encode())
        logger.info("four-setting results written to %s", path)
    return engine


def cmd_run(args: argparse.Namespace) -> int:
    """torchreid's main.py workflow (train, or test with test.evaluate True)."""
    cfg = C.config_from_args(args)
    _setup(cfg, args)
    run_from_config(cfg, args.device)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Trains ``model.name`` on ``data.sources``; writes ``model.pth`` in ``data.save_dir``."""
    cfg = C.config_from_args(args)
    _setup(cfg, args)
    train_from_config(cfg, args.device)
    return 0


def cmd_protect(args: argparse.Namespace) -> int:
    cfg = C.config_from_args(args)
    manifest = protect_from_config(cfg, args.weights, args.output, args.splits, args.device,
                                   progress=not args.no_progress, limit=args.max_images)
    logger.info("%d images protected in %s (%d skipped)", len(manifest["images"]), args.output,
                len(manifest["skipped"]))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    cfg = C.config_from_args(args)
    evaluate_to_files(cfg, args.weights, args.protected, args.json, args.device)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.output, device=args.device, quick=args.quick)
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    """Recovery attack: trains a U-Net on the attacker's pairs, recovers the victims' images."""
    from .attack import run_attack

    result = run_attack(args.attacker, args.victim, args.output, width=args.width,
                        depth=args.depth, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, seed=args.seed, device=args.device,
                        progress=not args.no_progress)
    for name in ("metrics", "protected_vs_original"):
        logger.info("%s: %s", name, result[name])
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Protectors side by side: Re-ID (Table 1), privacy and recovery attack (Table 2)."""
    from .report import ABLATION_ROWS, AttackSettings, run_report

    cfg = C.config_from_args(args)
    rows = list(args.rows) + (list(ABLATION_ROWS) if args.ablations else [])
    attack = AttackSettings(train_images=args.attack_train_images, epochs=args.attack_epochs,
                            width=args.attack_width)
    run_report(cfg, args.weights, args.output, rows, attack, device=args.device)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=default_device(), help="cpu or cuda (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchreid-pixelfade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train the authorised Re-ID model (model.pth)")
    _common(train)

    run = commands.add_parser("run", help="torchreid's main.py: train/test, pixelfade.enabled "
                                          "adds the four settings to every evaluation")
    _common(run)

    protect = commands.add_parser("protect", help="protect a dataset into PNG files + manifest")
    _common(protect)
    protect.add_argument("--weights", required=True, help="authorised model weights")
    protect.add_argument("--output", required=True, help="output folder")
    protect.add_argument("--splits", nargs="+", default=["query", "gallery"],
                         choices=["train", "query", "gallery"], help="splits to protect")
    protect.add_argument("--max-images", type=int, default=None,
                         help="at most N images per split, evenly spaced (default: all)")
    protect.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = commands.add_parser("evaluate", help="Re-ID (4 settings) and privacy metrics")
    _common(evaluate)
    evaluate.add_argument("--weights", required=True, help="authorised model weights")
    evaluate.add_argument("--protected", required=True, help="folder written by protect")
    evaluate.add_argument("--json", required=True, help="results file (a .md table beside it)")

    demo = commands.add_parser("demo", help="offline demo on synthetic pedestrians")
    demo.add_argument("--device", default=default_device(), help="cpu or cuda (default: auto)")
    demo.add_argument("--output", default="pixelfade-demo", help="output folder")
    demo.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")

    attack = commands.add_parser("attack", help="recovery attack: train a U-Net on (protected, "
                                                "original) pairs, recover victims' images")
    _common(attack)
    attack.add_argument("--attacker", required=True, help="protect folder the attacker trains on")
    attack.add_argument("--victim", required=True, help="protect folder of the victims")
    attack.add_argument("--output", required=True, help="output folder (attack.json, unet.pth)")
    attack.add_argument("--epochs", type=int, default=100, help="training epochs (default 100)")
    attack.add_argument("--width", type=int, default=64, help="U-Net base width (default 64)")
    attack.add_argument("--depth", type=int, default=None,
                        help="U-Net down-samplings (default: largest <= 7 dividing the size)")
    attack.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    attack.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    attack.add_argument("--seed", type=int, default=0, help="initialisation/shuffling seed")
    attack.add_argument("--no-progress", action="store_true", help="no progress bar")
    attack.set_defaults(func=cmd_attack)

    report = commands.add_parser("report", help="protectors side by side: Re-ID, privacy and "
                                                "recovery attack (paper Tables 1-4, Fig. 3)")
    _common(report)
    report.add_argument("--weights", required=True, help="authorised model weights")
    report.add_argument("--output", required=True, help="output folder (resumable)")
    report.add_argument("--rows", nargs="+", default=["identity", "blur", "mosaic", "avih",
                                                      "pixelfade"],
                        help="protectors, optionally with options: pixelfade:noise_weight=0.6 "
                             "(end the list with -- before KEY VALUE overrides)")
    report.add_argument("--ablations", action="store_true",
                        help="add the PixelFade ablation rows of Tables 3 and 4")
    report.add_argument("--attack-train-images", type=int, default=1000,
                        help="attacker's pairs: train images, evenly spaced (default 1000)")
    report.add_argument("--attack-epochs", type=int, default=20)
    report.add_argument("--attack-width", type=int, default=16, help="U-Net base width")

    for sub, func in ((train, cmd_train), (run, cmd_run), (protect, cmd_protect),
                      (evaluate, cmd_evaluate), (report, cmd_report)):
        C.add_torchreid_arguments(sub)
        sub.set_defaults(func=func)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
