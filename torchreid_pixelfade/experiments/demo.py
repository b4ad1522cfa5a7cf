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

from .. import config as C
from ..data.synthetic import SyntheticConfig, make_synthetic_market1501
from ..io import load_images, write_image_grid
from ..store import ProtectedFolder
from ..workflows import evaluate_folder, protect_dataset, train

logger = logging.getLogger(__name__)

DEMO_CONFIG = os.path.join(os.path.dirname(__file__), "demo.yaml")


def demo_config(data_root: str, save_dir: str, quick: bool = False):
    """The demo's configuration (``demo.yaml``) with its folders; ``quick`` trains 2 epochs and
    protects with 5 steps (a smoke test)."""
    cfg = C.get_default_config()
    C.merge_file(cfg, DEMO_CONFIG)
    C.merge_opts(cfg, ["data.root", data_root, "data.save_dir", save_dir])
    if quick:
        C.merge_opts(cfg, ["train.max_epoch", "2", "pixelfade.steps", "5"])
    cfg.freeze()
    return cfg


def synthetic_config(quick: bool = False) -> SyntheticConfig:
    if quick:
        return SyntheticConfig(num_train_ids=8, num_test_ids=12, images_per_id_per_camera=2)
    return SyntheticConfig()


def comparison_grid(protected_dir: str, path: str, num_ids: int = 8) -> None:
    """Writes a PNG: top row originals, bottom row protected query images of ``num_ids`` ids."""
    folder = ProtectedFolder.open(protected_dir)
    first_of_id = {}
    for image in folder.entries("query"):
        first_of_id.setdefault(image.pid, image)
    chosen = list(first_of_id.values())[:num_ids]
    size = folder.image_size
    write_image_grid([load_images([folder.original_path(e) for e in chosen], *size),
                      load_images([folder.protected_path(e) for e in chosen], *size)], path)


def run_demo(output: str = "pixelfade-demo", device: str = "cpu", quick: bool = False) -> dict:
    """Runs the whole demo into ``output``; returns the results dictionary.

    Every stage is resumable: the dataset, the trained weights and the protected images are
    reused when a previous run left them complete. A ``quick`` run keeps its own weights,
    protected images and results (``train-quick/``, ``protected-quick/``,
    ``results-quick.json``, ``grid-quick.png``), so it never stands in for the full demo.
    """
    began = time.perf_counter()
    suffix = "-quick" if quick else ""
    data_root = os.path.join(output, "data")
    make_synthetic_market1501(data_root, synthetic_config(quick))
    cfg = demo_config(data_root, os.path.join(output, f"train{suffix}"), quick)
    weights = os.path.join(cfg.data.save_dir, "model.pth")
    if not os.path.exists(weights):
        torch.manual_seed(cfg.train.seed)
        weights = train(cfg, device)
    protected = os.path.join(output, f"protected{suffix}")
    protect_dataset(cfg, weights, protected, ("query", "gallery"), device)
    results = evaluate_folder(cfg, weights, protected,
                              os.path.join(output, f"results{suffix}.json"), device).to_dict()
    comparison_grid(protected, os.path.join(output, f"grid{suffix}.png"))
    logger.info("demo finished in %.0f s; see %s", time.perf_counter() - began, output)
    return results
