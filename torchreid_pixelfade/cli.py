"""The ``torchreid-pixelfade`` command line: train, protect, evaluate, demo.

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


def cmd_train(args: argparse.Namespace) -> int:
    """Trains ``model.name`` on ``data.sources``; writes ``model.pth`` in ``data.save_dir``."""
    from ._torchreid import tr
    from .training import build_training

    cfg = C.config_from_args(args)
    _setup(cfg, args)
    use_gpu = torch.device(args.device).type == "cuda"
    datamanager = tr.data.ImageDataManager(**C.imagedata_kwargs(cfg, use_gpu=use_gpu))
    engine = build_training(datamanager, cfg.model.name, cfg.loss.name, C.optimizer_kwargs(cfg),
                            C.lr_scheduler_kwargs(cfg), warmup_epochs=cfg.train.warmup_epochs,
                            pretrained=cfg.model.pretrained, loss_kwargs=loss_kwargs(cfg),
                            device=args.device)
    run_kwargs = C.engine_run_kwargs(cfg)
    run_kwargs["test_only"] = False
    engine.run(**run_kwargs)
    logger.info("best Rank-1 %.4f; weights: %s", engine.best_rank1,
                os.path.join(cfg.data.save_dir, engine.weights_name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchreid-pixelfade", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train the authorised Re-ID model")
    train.add_argument("--device", default=default_device(), help="cpu or cuda (default: auto)")
    C.add_torchreid_arguments(train)
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
