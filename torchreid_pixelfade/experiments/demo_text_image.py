"""The text-to-image demo: synthetic CUHK-PEDES, ICFG-PEDES and RSTPReid -> train a tiny dual
encoder on CUHK-PEDES -> protect each test gallery -> search it by its captions -> files.

Under ``OUTPUT/``: ``train/model.pth`` and, per dataset ``<name>/``: ``protected/`` (PixelFade
PNGs + manifest), ``results.json``/``.md`` (T2O and T2P: captions against the original and the
protected gallery; privacy and constraint met of the stored images), two negative controls
(``results-noise.json``: a pure-noise gallery; ``results-shuffled.json``: captions given to the
wrong people; both at chance) and ``figure.png`` (caption, gallery original, gallery protected).
``OUTPUT/results.md`` gathers them. The one model is trained on CUHK-PEDES and searched on all
three sets (the three synthetic sets share the renderer and the caption generator, with their
own people, layouts and caption counts). Every stage is resumable.
"""
from __future__ import annotations

import io
import logging
import os
import textwrap
import time

import torch
from PIL import Image, ImageDraw

from .. import config as C
from ..data.synthetic import (SyntheticCuhkPedesConfig, SyntheticIcfgPedesConfig,
                              SyntheticRstpReidConfig, make_synthetic_cuhk_pedes,
                              make_synthetic_icfg_pedes, make_synthetic_rstpreid)
from ..io import atomic_write_bytes, atomic_write_json, load_images, to_uint8
from ..store import ProtectedFolder
from ..workflows import evaluate_folder, protect_dataset, train

logger = logging.getLogger(__name__)

DEMO_CONFIG = os.path.join(os.path.dirname(__file__), "demo_text_image.yaml")
DATASETS = ("cuhk_pedes", "icfg_pedes", "rstpreid")


def make_data(root: str, quick: bool = False) -> None:
    """Writes the three synthetic sets under ``root`` (reused when complete)."""
    size = {"height": 64, "width": 32}
    train_ids, test_ids = (8, 6) if quick else (300, 32)
    make_synthetic_cuhk_pedes(root, SyntheticCuhkPedesConfig(
        num_train_ids=train_ids, num_val_ids=2, num_test_ids=test_ids, **size))
    make_synthetic_icfg_pedes(root, SyntheticIcfgPedesConfig(
        num_train_ids=4, num_test_ids=test_ids, **size))
    make_synthetic_rstpreid(root, SyntheticRstpReidConfig(
        num_train_ids=4, num_val_ids=2, num_test_ids=test_ids, **size))


def demo_config(data_root: str, save_dir: str, target: str = "cuhk_pedes",
                quick: bool = False, protector: str = "pixelfade"):
    """``demo_text_image.yaml`` for ``target``; ``quick`` trains 2 epochs and protects with 5
    steps."""
    cfg = C.get_default_config()
    C.merge_file(cfg, DEMO_CONFIG)
    C.merge_opts(cfg, ["data.root", data_root, "data.save_dir", save_dir,
                       "data.targets", [target], "pixelfade.protector", protector])
    if quick:
        C.merge_opts(cfg, ["train.max_epoch", 2, "train.warmup_epochs", 0,
                           "train.batch_size", 16, "pixelfade.steps", 5])
    cfg.freeze()
    return cfg


def caption_figure(folder: ProtectedFolder, test_split, path: str, num_images: int = 6) -> None:
    """Writes a PNG: per column a caption (wrapped), its gallery image, the protected one."""
    entries = folder.entries()[:num_images]
    captions = {r.relpath: r.captions[0] for r in test_split.images}
    height, width = folder.image_size
    scale, text_height, column = 3, 150, 3 * width + 12
    pairs = [load_images([folder.original_path(e), folder.protected_path(e)], height, width)
             for e in entries]
    canvas = Image.new("RGB", (column * len(entries), text_height + 2 * scale * height + 12),
                       "white")
    draw = ImageDraw.Draw(canvas)
    for i, (entry, images) in enumerate(zip(entries, pairs)):
        lines = textwrap.wrap(captions.get(entry.source, ""), width=16)[:10]
        draw.text((i * column + 4, 4), "\n".join(lines), fill="black")
        for row, image in enumerate(images):
            picture = Image.fromarray(to_uint8(image)).resize((scale * width, scale * height),
                                                               Image.NEAREST)
            canvas.paste(picture, (i * column + 6, text_height + row * (scale * height + 6)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def shuffled_control(cfg, weights: str, protected: str, path: str, device: str) -> dict:
    """T2O/T2P with every caption given a wrong person (seeded): the chance-level control."""
    from ..engines.text_image.task import evaluate_t2i
    from ..workflows.text_image import gallery, t2i_models

    image, text, tokenizer = t2i_models(cfg, weights, device)
    result = evaluate_t2i(image, text, tokenizer, protected, gallery(cfg)[2],
                          batch_size=cfg.test.batch_size, device=device,
                          context_length=cfg.text_image.context_length, shuffle_seed=0,
                          dataset=cfg.data.targets[0])
    result.write(path)
    return result.to_dict()


def run_dataset(output: str, target: str, weights: str, device: str, quick: bool) -> dict:
    """Protect, evaluate and draw one dataset's test gallery; returns the results."""
    from ..workflows.text_image import gallery

    suffix = "-quick" if quick else ""
    folder = os.path.join(output, target)
    data_root, save_dir = os.path.join(output, "data"), os.path.dirname(weights)
    results = {}
    for name, stored, json_name in (("pixelfade", "protected", "results"),
                                    ("noise", "noise", "results-noise")):
        cfg = demo_config(data_root, save_dir, target, quick, name)
        stored = os.path.join(folder, stored + suffix)
        protect_dataset(cfg, weights, stored, device=device)
        results[name] = evaluate_folder(cfg, weights, stored, os.path.join(
            folder, f"{json_name}{suffix}.json"), device).to_dict()
    cfg = demo_config(data_root, save_dir, target, quick)
    protected = os.path.join(folder, f"protected{suffix}")
    results["shuffled captions"] = shuffled_control(
        cfg, weights, protected, os.path.join(folder, f"results-shuffled{suffix}.json"), device)
    caption_figure(ProtectedFolder.open(protected), gallery(cfg)[2],
                   os.path.join(folder, f"figure{suffix}.png"))
    return results


def summary_markdown(results: dict) -> str:
    """One table per dataset: T2O and T2P of PixelFade and of the two controls."""
    lines = ["# Text-to-image demo (synthetic data)", ""]
    for dataset, runs in results.items():
        lines += [f"## {dataset}", "", "| gallery / queries | setting | Rank-1 | Rank-5 | mAP | "
                  "mINP |", "|---|---|---|---|---|---|"]
        for name, result in runs.items():
            for key, row in result["settings"].items():
                lines.append(f"| {name} | {key} | {100 * row['rank1']:.1f} | "
                             f"{100 * row['rank5']:.1f} | {100 * row['mAP']:.1f} | "
                             f"{100 * row['mINP']:.1f} |")
        protection, privacy = runs["pixelfade"]["protection"], runs["pixelfade"]["privacy"]
        lines += ["", f"{runs['pixelfade']['num_gallery']} gallery images, "
                  f"{runs['pixelfade']['num_query']} captions (the two controls show "
                  "chance level). PixelFade gallery: "
                  f"SSIM {privacy['ssim']:.3f}, PSNR {privacy['psnr']:.2f} dB, constraint met "
                  f"{100 * (protection['constraint_met_fraction'] or 0):.1f}%, "
                  f"{protection['seconds_per_image']:.3f} s per image.", ""]
    return "\n".join(lines)


def run_t2i_demo(output: str = "pixelfade-demo-t2i", device: str = "cpu",
                 quick: bool = False) -> dict:
    """Runs the text-to-image demo into ``output``; returns ``{dataset: results}``."""
    began = time.perf_counter()
    suffix = "-quick" if quick else ""
    data_root = os.path.join(output, "data")
    make_data(data_root, quick)
    cfg = demo_config(data_root, os.path.join(output, f"train{suffix}"), quick=quick)
    weights = os.path.join(cfg.data.save_dir, "model.pth")
    if not os.path.exists(weights):
        torch.manual_seed(cfg.train.seed)
        weights = train(cfg, device)
    results = {name: run_dataset(output, name, weights, device, quick) for name in DATASETS}
    atomic_write_json(os.path.join(output, f"results{suffix}.json"), results)
    atomic_write_bytes(os.path.join(output, f"results{suffix}.md"),
                       summary_markdown(results).encode())
    logger.info("text-to-image demo finished in %.0f s; see %s\n%s",
                time.perf_counter() - began, output, summary_markdown(results))
    return results
