"""The visible-infrared demo: synthetic SYSU-MM01 and RegDB -> train the two-stream CPU model ->
protect the infrared test images -> evaluate RGB-to-IR search -> files.

For each dataset, under ``OUTPUT/<dataset>/``: ``train/model.pth``, ``protected/`` (PixelFade
PNGs + manifest), ``results.json``/``.md`` (O2O and O2P of RGB queries against the original and
protected IR gallery, SYSU's official IR-to-RGB direction as O2O/P2O, per trial and averaged;
privacy and constraint met of the stored IR images), the negative control ``noise/`` +
``results-noise.json`` (a pure-noise IR gallery: O2P at chance) and ``figure.png`` (rows: RGB
query, IR original, IR protected, one identity per column). ``OUTPUT/results.md`` gathers them.
Every stage is resumable, as in the image demo.
"""
from __future__ import annotations

import logging
import os
import time

import torch

from .. import config as C
from ..data.synthetic import (SyntheticRegDBConfig, SyntheticSysuConfig, make_synthetic_regdb,
                              make_synthetic_sysu_mm01)
from ..io import atomic_write_bytes, load_images, write_image_grid
from ..store import ProtectedFolder
from ..workflows import evaluate_folder, protect_dataset, train

logger = logging.getLogger(__name__)

DEMO_CONFIG = os.path.join(os.path.dirname(__file__), "demo_visible_infrared.yaml")
#: The demo's datasets: torchreid name -> folder name of its outputs.
DATASETS = {"sysu_mm01": "sysu_mm01", "regdb_trial1": "regdb"}


def make_data(root: str, quick: bool = False) -> None:
    """Writes the synthetic SYSU-MM01 and RegDB under ``root`` (reused when complete)."""
    size = {"height": 64, "width": 32}
    if quick:
        make_synthetic_sysu_mm01(root, SyntheticSysuConfig(
            num_train_ids=6, num_val_ids=2, num_test_ids=6, images_per_id_per_camera=2, **size))
        make_synthetic_regdb(root, SyntheticRegDBConfig(num_ids=8, images_per_id=4, **size))
    else:  # many identities: cross-modal features only generalise to new people from many
        make_synthetic_sysu_mm01(root, SyntheticSysuConfig(
            num_train_ids=160, num_val_ids=8, num_test_ids=20, images_per_id_per_camera=2,
            **size))
        make_synthetic_regdb(root, SyntheticRegDBConfig(num_ids=160, images_per_id=2, **size))


def demo_config(data_root: str, save_dir: str, dataset: str, quick: bool = False):
    """``demo_visible_infrared.yaml`` for ``dataset`` (a torchreid name of :data:`DATASETS`);
    ``quick`` trains 2 epochs on batches of 4 ids x 2 images, protects with 5 steps and
    evaluates 2 trials."""
    cfg = C.get_default_config()
    C.merge_file(cfg, DEMO_CONFIG)
    C.merge_opts(cfg, ["data.root", data_root, "data.save_dir", save_dir,
                       "data.sources", [dataset], "data.targets", [dataset]])
    if quick:
        C.merge_opts(cfg, ["train.max_epoch", 2, "visible_infrared.batches_per_epoch", 0,
                           "train.batch_size", 8,
                           "sampler.num_instances", 2, "pixelfade.steps", 5])
        if dataset.startswith("sysu"):  # RegDB: one model per trial, the dataset's own
            C.merge_opts(cfg, ["visible_infrared.trials", [0, 1]])
    cfg.freeze()
    return cfg


def comparison_figure(cfg, protected_dir: str, path: str, num_ids: int = 8) -> None:
    """Writes a PNG: RGB query, IR original and IR protected of ``num_ids`` test identities."""
    from ..engines.visible_infrared.task import visible_test_records
    from ..workflows.visible_infrared import vi_test_set

    folder = ProtectedFolder.open(protected_dir)
    infrared = {}
    for image in folder.entries():
        infrared.setdefault(image.pid, image)
    visible = {}
    for record in visible_test_records(vi_test_set(cfg)):
        visible.setdefault(record.pid, record)
    pids = [pid for pid in infrared if pid in visible][:num_ids]
    size = folder.image_size
    write_image_grid([load_images([visible[p].path for p in pids], *size),
                      load_images([folder.original_path(infrared[p]) for p in pids], *size),
                      load_images([folder.protected_path(infrared[p]) for p in pids], *size)],
                     path)


def trained_weights(cfg, device: str) -> str:
    """``cfg.data.save_dir/model.pth``, trained first (seeded with ``train.seed``) if absent."""
    weights = os.path.join(cfg.data.save_dir, "model.pth")
    if not os.path.exists(weights):
        torch.manual_seed(cfg.train.seed)
        weights = train(cfg, device)
    return weights


def protect_and_evaluate(cfg, weights: str, stored: str, results_json: str, device: str,
                         opts: list | tuple = ()) -> dict:
    """Protects the IR test images of ``cfg`` (with ``opts``, ``KEY VALUE`` overrides such as
    ``["pixelfade.protector", "noise"]``) into ``stored``, evaluates them from the PNGs into
    ``results_json`` (and ``.md``) and returns the evaluation as a dict."""
    cfg = cfg.clone()
    cfg.defrost()
    C.merge_opts(cfg, list(opts))
    cfg.freeze()
    protect_dataset(cfg, weights, stored, device=device)
    return evaluate_folder(cfg, weights, stored, results_json, device).to_dict()


def run_dataset(output: str, dataset: str, device: str, quick: bool) -> dict:
    """Train, protect (PixelFade and the noise control), evaluate and draw one dataset;
    returns ``{"pixelfade": results, "noise": results}``."""
    suffix = "-quick" if quick else ""
    folder = os.path.join(output, DATASETS[dataset])
    cfg = demo_config(os.path.join(output, "data"), os.path.join(folder, f"train{suffix}"),
                      dataset, quick)
    weights = trained_weights(cfg, device)
    results = {}
    for name in ("pixelfade", "noise"):
        stored = os.path.join(folder, f"{'protected' if name == 'pixelfade' else name}{suffix}")
        json_name = "results" if name == "pixelfade" else "results-noise"
        results[name] = protect_and_evaluate(
            cfg, weights, stored, os.path.join(folder, f"{json_name}{suffix}.json"), device,
            ["pixelfade.protector", name])
    comparison_figure(cfg, os.path.join(folder, f"protected{suffix}"),
                      os.path.join(folder, f"figure{suffix}.png"))
    return results


def summary_markdown(results: dict) -> str:
    """One table per dataset: Rank-1 and mAP of every setting, PixelFade and noise control."""
    lines = ["# Visible-infrared demo (synthetic data)", ""]
    for dataset, runs in results.items():
        lines += [f"## {dataset}", "", "| gallery | setting | Rank-1 | mAP | mINP |",
                  "|---|---|---|---|---|"]
        for name, result in runs.items():
            for key, row in result["settings"].items():
                lines.append(f"| {name} | {key} | {100 * row['rank1']:.1f} | "
                             f"{100 * row['mAP']:.1f} | {100 * row['mINP']:.1f} |")
        protection, privacy = runs["pixelfade"]["protection"], runs["pixelfade"]["privacy"]
        lines += ["", f"PixelFade IR images: SSIM {privacy['ssim']:.3f}, PSNR "
                  f"{privacy['psnr']:.2f} dB, constraint met "
                  f"{100 * (protection['constraint_met_fraction'] or 0):.1f}%, "
                  f"{protection['seconds_per_image']:.3f} s per image.", ""]
    return "\n".join(lines)


def run_vi_demo(output: str = "pixelfade-demo-vi", device: str = "cpu",
                quick: bool = False) -> dict:
    """Runs the visible-infrared demo into ``output``; returns ``{dataset: results}``."""
    began = time.perf_counter()
    make_data(os.path.join(output, "data"), quick)
    results = {DATASETS[name]: run_dataset(output, name, device, quick) for name in DATASETS}
    suffix = "-quick" if quick else ""
    atomic_write_bytes(os.path.join(output, f"results{suffix}.md"),
                       summary_markdown(results).encode())
    logger.info("visible-infrared demo finished in %.0f s; see %s\n%s",
                time.perf_counter() - began, output, summary_markdown(results))
    return results
