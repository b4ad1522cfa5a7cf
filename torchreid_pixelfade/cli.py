"""The ``torchreid-pixelfade`` command line: train, run, protect, evaluate, attack, report, demo.

Each command parses torchreid-style arguments (``--config-file``, ``--root``, ``-s``, ``-t``,
trailing ``KEY VALUE`` overrides), builds a frozen config and calls one library workflow. Nothing
in the package imports this module; ``python -m torchreid_pixelfade`` and ``tools/`` do.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from . import config as C
from .store import ConstraintMissedError

logger = logging.getLogger(__name__)


def cmd_run(args: argparse.Namespace) -> int:
    """torchreid's main.py workflow (train, or test with test.evaluate True)."""
    from . import workflows

    cfg = C.config_from_args(args)
    logger.info("device %s; config written to %s", args.device, workflows.prepare_run(cfg))
    workflows.run(cfg, args.device)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Trains ``model.name`` on ``data.sources``; writes ``model.pth`` in ``data.save_dir``."""
    from . import workflows

    cfg = C.config_from_args(args)
    logger.info("device %s; config written to %s", args.device, workflows.prepare_run(cfg))
    workflows.train(cfg, args.device)
    return 0


def cmd_protect(args: argparse.Namespace) -> int:
    from .workflows import protect_dataset

    cfg = C.config_from_args(args)
    folder = protect_dataset(cfg, args.weights, args.output, args.splits, args.device,
                             progress=not args.no_progress, limit=args.max_images)
    logger.info("%d images protected in %s (%d skipped)", len(folder), args.output,
                len(folder.skipped))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .workflows import evaluate_folder

    evaluate_folder(C.config_from_args(args), args.weights, args.protected, args.json,
                    args.device, allow_other_weights=args.allow_other_weights,
                    source_root=args.source_root)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The offline demo of ``--scenario`` on synthetic data it writes itself."""
    if args.scenario == "visible_infrared":
        from .experiments.demo_visible_infrared import run_vi_demo as run_demo
    elif args.scenario == "text_image":
        from .experiments.demo_text_image import run_t2i_demo as run_demo
    else:
        from .experiments.demo import run_demo

    run_demo(args.output or f"pixelfade-demo{SCENARIO_SUFFIX[args.scenario]}",
             device=args.device, quick=args.quick)
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    """Recovery attack: trains a U-Net on the attacker's pairs, recovers the victims' images."""
    from .attack import run_attack

    result = run_attack(args.attacker, args.victim, args.output, width=args.width,
                        depth=args.depth, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, seed=args.seed, device=args.device,
                        progress=not args.no_progress,
                        **({"victim_chunk": args.victim_chunk} if args.victim_chunk else {}))
    for name in ("metrics", "protected_vs_original"):
        logger.info("%s: %s", name, result[name])
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Protectors side by side: Re-ID (Table 1), privacy and recovery attack (Table 2)."""
    from .experiments.report import ABLATION_ROWS, AttackConfig, default_rows, run_report

    cfg = C.config_from_args(args)
    rows = (list(args.rows) if args.rows else None)
    if args.ablations:
        rows = [*(rows or default_rows(cfg)), *ABLATION_ROWS]
    attack = AttackConfig(train_images=args.attack_train_images, epochs=args.attack_epochs,
                          width=args.attack_width)
    run_report(cfg, args.weights, args.output, rows, attack, device=args.device)
    return 0


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda "
                                                       "when available)")
    parser.add_argument("--log-level", default=argparse.SUPPRESS,
                        help="logging level (default INFO; DEBUG shows tracebacks)")


def _add_protect(commands) -> argparse.ArgumentParser:
    protect = commands.add_parser("protect", help="protect a dataset into PNG files + manifest")
    protect.add_argument("--weights", required=True, help="authorised model weights")
    protect.add_argument("--output", required=True, help="output folder")
    protect.add_argument("--splits", nargs="+", default=["query", "gallery"],
                         choices=["train", "query", "gallery"], help="splits to protect")
    protect.add_argument("--max-images", type=positive_int, default=None,
                         help="at most N images per split, evenly spaced (default: all)")
    protect.add_argument("--no-progress", action="store_true", help="no progress bar")
    return protect


def _add_evaluate(commands) -> argparse.ArgumentParser:
    evaluate = commands.add_parser("evaluate", help="Re-ID (4 settings) and privacy metrics")
    evaluate.add_argument("--weights", required=True, help="authorised model weights")
    evaluate.add_argument("--protected", required=True, help="folder written by protect")
    evaluate.add_argument("--json", required=True, help="results file (a .md table beside it)")
    evaluate.add_argument("--allow-other-weights", action="store_true",
                          help="evaluate with another model or weights than the folder was "
                               "protected with (refused by default)")
    evaluate.add_argument("--source-root", default=None,
                          help="folder of the original images, instead of the one the manifest "
                               "records (e.g. for a folder protected on another machine)")
    return evaluate


#: The demos and the suffix of their default output folder.
SCENARIO_SUFFIX = {"image": "", "visible_infrared": "-vi", "text_image": "-t2i"}


def _add_demo(commands) -> argparse.ArgumentParser:
    demo = commands.add_parser("demo", help="offline demo on synthetic pedestrians")
    demo.add_argument("--scenario", choices=list(SCENARIO_SUFFIX), default="image",
                      help="image (Market-1501-style, default), visible_infrared "
                           "(SYSU-MM01 and RegDB: RGB queries, protected IR gallery) or "
                           "text_image (CUHK-PEDES, ICFG-PEDES, RSTPReid: captions, protected "
                           "image gallery)")
    demo.add_argument("--output", default=None,
                      help="output folder (default pixelfade-demo[-vi|-t2i])")
    demo.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    return demo


def _add_attack(commands) -> argparse.ArgumentParser:
    attack = commands.add_parser("attack", help="recovery attack: train a U-Net on (protected, "
                                                "original) pairs, recover victims' images")
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
    attack.add_argument("--victim-chunk", type=int, default=None,
                        help="victims attacked and scored at once, a multiple of 20; memory "
                             "follows it, not the number of victims (default: run_attack's, "
                             "attack.recovery.VICTIM_CHUNK)")
    attack.add_argument("--no-progress", action="store_true", help="no progress bar")
    return attack


def _add_report(commands) -> argparse.ArgumentParser:
    report = commands.add_parser("report", help="protectors side by side: Re-ID, privacy and "
                                                "recovery attack (paper Tables 1-4, Fig. 3)")
    report.add_argument("--weights", required=True, help="authorised model weights")
    report.add_argument("--output", required=True, help="output folder (resumable)")
    report.add_argument("--rows", nargs="+", default=None,
                        help="protectors, optionally with options: pixelfade:noise_weight=0.6 "
                             "(end the list with -- before KEY VALUE overrides; default: the "
                             "paper's, identity blur mosaic avih pixelfade for images, identity "
                             "avih pixelfade for data.type visible_infrared/text_image)")
    report.add_argument("--ablations", action="store_true",
                        help="add the PixelFade ablation rows of Tables 3 and 4")
    report.add_argument("--attack-train-images", type=int, default=1000,
                        help="attacker's pairs: train images, evenly spaced (default 1000)")
    report.add_argument("--attack-epochs", type=int, default=20)
    report.add_argument("--attack-width", type=int, default=16, help="U-Net base width")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchreid-pixelfade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train the authorised Re-ID model (model.pth)")
    run = commands.add_parser("run", help="torchreid's main.py: train/test, pixelfade.enabled "
                                          "adds the four settings to every evaluation")
    with_config = {train: cmd_train, run: cmd_run, _add_protect(commands): cmd_protect,
                   _add_evaluate(commands): cmd_evaluate, _add_report(commands): cmd_report}
    for sub, func in with_config.items():
        C.add_torchreid_arguments(sub)
        sub.set_defaults(func=func)
    _add_demo(commands).set_defaults(func=cmd_demo)
    _add_attack(commands).set_defaults(func=cmd_attack)
    for sub in commands.choices.values():
        _device(sub)
    return parser


#: Failures a user can fix (bad path, bad value, refused folder, images that miss the feature
#: bound under pixelfade.on_missed_constraint fail): one line, no traceback.
EXPECTED_ERRORS = (ValueError, KeyError, TypeError, OSError, ConstraintMissedError)


def _looks_like_option(token: str) -> bool:
    if not token.startswith("-") or token == "--":
        return False
    try:
        float(token)  # a negative number is a value
        return False
    except ValueError:
        return True


#: List options whose values never contain a dot, so a ``KEY VALUE`` override they swallowed
#: (``-s market1501 data.height 64``) can be told apart and handed back.
LIST_OPTIONS = ("sources", "targets", "transforms")


def _is_config_key(token: str) -> bool:
    parts = token.split(".")
    return len(parts) > 1 and all(part.isidentifier() for part in parts)


def _take_back_overrides(args: argparse.Namespace) -> None:
    """Moves ``KEY VALUE`` overrides swallowed by a list option (``-s``, ``-t``,
    ``--transforms``) from the option back to the overrides."""
    for name in LIST_OPTIONS:
        values = getattr(args, name, None) or []
        cut = next((i for i, token in enumerate(values) if _is_config_key(token)), None)
        if cut is not None:
            setattr(args, name, values[:cut])
            args.opts = values[cut:] + list(args.opts or [])


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses ``argv``; ``KEY VALUE`` overrides may come before, between or after options
    (``... pixelfade.eps 0.05 --output X`` works), unknown options are refused. After a ``--``
    (needed to end a list option such as ``--rows``) every token is an override, so options go
    before it."""
    args, extras = parser.parse_known_args(argv)
    _take_back_overrides(args)
    unknown = [token for token in extras if _looks_like_option(token)]
    if unknown or (extras and not hasattr(args, "opts")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extras)}")
    if extras:
        args.opts = list(args.opts or []) + extras
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.device:
        from .workflows import default_device

        args.device = default_device()
    try:
        return args.func(args)
    except EXPECTED_ERRORS as error:
        if args.log_level.upper() == "DEBUG":
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        logger.error("%s: %s (run with --log-level DEBUG for the traceback)",
                     type(error).__name__, message)
        return 2


if __name__ == "__main__":
    sys.exit(main())
