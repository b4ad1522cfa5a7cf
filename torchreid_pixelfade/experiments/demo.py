"""The offline demo: synthetic pedestrians -> train osnet_x0_25 -> protect -> evaluate -> files.

Runs on 2 CPU cores in a few minutes with no download: it writes a synthetic Market-1501-style
dataset, trains the authorised ``osnet_x0_25`` at 128x64 from scratch with torchreid's engine,
protects query and gallery with PixelFade into PNG files, re-reads them for evaluation and writes
``results.json``, ``results.md`` and ``grid.png`` (original vs protected, 8 identities).
"""
from __future__ import annotations

import logging
import os
import time

import torch

from . import config as C
from .data.synthetic import SyntheticConfig, make_synthetic_market1501
from .io import write_image_grid
from .store import load_images, load_manifest, stored_pairs

logger = logging.getLogger(__name__)


def demo_config(data_root: str, save_dir: str, quick: bool = False):
    """The demo's configuration: osnet_x0_25 at 128x64, softmax, amsgrad + cosine, from scratch."""
    cfg = C.get_default_config()
    C.merge_opts(cfg, [
        "model.name", "osnet_x0_25", "model.pretrained", "False",
        "data.root", data_root, "data.save_dir", save_dir, "data.height", "128",
        "data.width", "64", "data.workers", "0", "data.sources", "['market1501']",
        "data.targets", "['market1501']",
        "train.optim", "amsgrad", "train.lr", "0.003", "train.lr_scheduler", "cosine",
        "train.max_epoch", "2" if quick else "25", "train.warmup_epochs", "1",
        "train.batch_size", "32", "train.print_freq", "100", "train.seed", "1",
        "test.normalize_feature", "True", "test.ranks", "[1, 5, 10]", "test.batch_size", "200",
        "pixelfade.steps", "5" if quick else "100", "pixelfade.batch_size", "64",
        "pixelfade.seed", "0",
        # step sizes and final phase measured for osnet_x0_25 at 128x64 (docs/RESULTS.md)
        "pixelfade.beta", "0.005", "pixelfade.beta_temp", "0.005",
        "pixelfade.no_replace_last", "20",
    ])
    cfg.freeze()
    return cfg


def synthetic_config(quick: bool = False) -> SyntheticConfig:
    if quick:
        return SyntheticConfig(num_train_ids=8, num_test_ids=12, images_per_id_per_camera=2)
    return SyntheticConfig()


def comparison_grid(out_dir: str, path: str, num_ids: int = 8) -> None:
    """Writes a PNG: top row originals, bottom row protected query images of ``num_ids`` ids."""
    manifest = load_manifest(out_dir)
    size = manifest["settings"]["height"], manifest["settings"]["width"]
    first_of_id = {}
    for key, protected, original in zip(*stored_pairs(out_dir, manifest, "query")):
        first_of_id.setdefault(manifest["images"][key]["pid"], (original, protected))
    originals, protected = zip(*list(first_of_id.values())[:num_ids])
    write_image_grid([load_images(originals, *size), load_images(protected, *size)], path)


def run_demo(output: str = "pixelfade-demo", device: str = "cpu", quick: bool = False) -> dict:
    """Runs the whole demo into ``output``; returns the results dictionary.

    Every stage is resumable: the dataset, the trained weights and the protected images are
    reused when a previous run left them complete.
    """
    from .cli import evaluate_to_files, protect_from_config, train_from_config

    began = time.perf_counter()
    data_root = os.path.join(output, "data")
    make_synthetic_market1501(data_root, synthetic_config(quick))
    cfg = demo_config(data_root, os.path.join(output, "train"), quick)
    weights = os.path.join(cfg.data.save_dir, "model.pth")
    if not os.path.exists(weights):
        torch.manual_seed(cfg.train.seed)
        weights = train_from_config(cfg, device)
    protected = os.path.join(output, "protected")
    protect_from_config(cfg, weights, protected, ("query", "gallery"), device)
    results = evaluate_to_files(cfg, weights, protected, os.path.join(output, "results.json"),
                                device)
    comparison_grid(protected, os.path.join(output, "grid.png"))
    logger.info("demo finished in %.0f s; see %s", time.perf_counter() - began, output)
    return results
