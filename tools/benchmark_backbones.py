"""Backbone scalability (paper Table 7): P2P Re-ID with no protection, AVIH and PixelFade.

For each torchreid backbone (any factory name), the authorised model is loaded from
``--weights-dir/<name>.pth`` or trained with torchreid's engine (``OUT/<name>/train/model.pth``,
reused when present), then query and gallery (all images of the first ``--max-ids`` test
identities) are protected with each protector and evaluated from the stored images. Writes
``backbones.json``, ``backbones.md`` and ``backbones.png`` (P2P Rank-1 per backbone and
protector). Resumable: trained weights and stored images are reused.

CPU-sized defaults (128x64, 15 epochs, 15 test identities); full-size runs by config:

    python tools/benchmark_backbones.py --root DATA --output backbones/ \
        --backbones osnet_x1_0 mobilenetv2_x1_0 resnet50 [--config-file X] [KEY VALUE ...]

Without ``--root`` a synthetic Market-1501-style dataset is generated in ``OUT/data``.
"""
from __future__ import annotations

import argparse
import logging
import os

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from torchreid_pixelfade import config as C  # noqa: E402
from torchreid_pixelfade.data.synthetic import (  # noqa: E402
    SyntheticConfig, make_synthetic_market1501)
from torchreid_pixelfade.experiments.report import row_config  # noqa: E402
from torchreid_pixelfade.io import atomic_write_bytes, atomic_write_json  # noqa: E402
from torchreid_pixelfade.workflows import (build_authorized_model, default_device,  # noqa: E402
                                           evaluate_folder, protect_dataset, train)

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs",
                              "osnet_x1_0_128x64.yaml")


def backbone_config(cfg, name: str, out_dir: str, epochs: int):
    """``cfg`` for backbone ``name``: its own save_dir and epoch count."""
    backbone = cfg.clone()
    backbone.defrost()
    C.merge_opts(backbone, ["model.name", name, "train.max_epoch", str(epochs),
                            "data.save_dir", os.path.join(out_dir, name, "train")])
    backbone.freeze()
    return backbone


def weights_for(cfg, name: str, weights_dir: str, device: str) -> str:
    """Given weights, earlier trained weights, or a new training run."""
    given = os.path.join(weights_dir, f"{name}.pth") if weights_dir else ""
    if given and os.path.exists(given):
        return given
    trained = os.path.join(cfg.data.save_dir, "model.pth")
    return trained if os.path.exists(trained) else train(cfg, device)


def benchmark_backbone(cfg, name: str, protectors, out_dir: str, weights: str,
                       max_ids: int, device: str) -> list[dict]:
    rows = []
    for protector in protectors:
        row_cfg = row_config(cfg, protector)
        folder = os.path.join(out_dir, name, protector)
        protect_dataset(row_cfg, weights, folder, ("query", "gallery"), device, max_ids=max_ids)
        model = build_authorized_model(row_cfg, weights, device)
        results = evaluate_folder(row_cfg, weights, folder, device=device).to_dict()
        dim = model(torch.zeros(1, 3, cfg.data.height, cfg.data.width, device=device)).shape[1]
        rows.append({"backbone": name, "protector": protector, "feature_dim": int(dim),
                     "P2P": results["settings"]["P2P"], "O2O": results["settings"]["O2O"],
                     "seconds_per_image": results["protection"]["seconds_per_image"],
                     "constraint_met_fraction":
                         results["protection"]["constraint_met_fraction"]})
        logging.info("%s / %s: P2P Rank-1 %.3f", name, protector, rows[-1]["P2P"]["rank1"])
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| backbone | dim | protector | P2P Rank-1 | P2P mAP | P2P mINP | s/image "
             "| constraint met |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, met = r["P2P"], r["constraint_met_fraction"]
        lines.append(f"| {r['backbone']} | {r['feature_dim']} | {r['protector']} | "
                     f"{100 * p['rank1']:.1f} | {100 * p['mAP']:.1f} | {100 * p['mINP']:.1f} | "
                     f"{r['seconds_per_image']:.3f} | "
                     f"{'' if met is None else f'{100 * met:.0f}%'} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str) -> None:
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    protectors = list(dict.fromkeys(r["protector"] for r in rows))
    width = 0.8 / len(protectors)
    figure, axis = plt.subplots(figsize=(1.8 + 1.6 * len(backbones), 3.2))
    for j, protector in enumerate(protectors):
        values = [100 * next(r["P2P"]["rank1"] for r in rows
                             if r["backbone"] == b and r["protector"] == protector)
                  for b in backbones]
        axis.bar([i + j * width for i in range(len(backbones))], values, width,
                 label=protector)
    axis.set_xticks([i + width * (len(protectors) - 1) / 2 for i in range(len(backbones))])
    axis.set_xticklabels(backbones)
    axis.set_ylabel("P2P Rank-1 (%)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+",
                        default=["osnet_x1_0", "mobilenetv2_x1_0", "resnet50"])
    parser.add_argument("--protectors", nargs="+", default=["identity", "avih", "pixelfade"])
    parser.add_argument("--output", default="benchmark_backbones")
    parser.add_argument("--weights-dir", default="", help="folder with <backbone>.pth files")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs when training")
    parser.add_argument("--max-ids", type=int, default=15,
                        help="test identities protected and evaluated (all their images; "
                             "0: the whole test split)")
    parser.add_argument("--device", default=default_device())
    C.add_torchreid_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.config_file:
        args.config_file = DEFAULT_CONFIG
    if not args.root:
        args.root = os.path.join(args.output, "data")
        make_synthetic_market1501(args.root, SyntheticConfig())
    cfg = C.config_from_args(args)
    rows = []
    for name in args.backbones:
        backbone = backbone_config(cfg, name, args.output, args.epochs)
        weights = weights_for(backbone, name, args.weights_dir, args.device)
        rows += benchmark_backbone(backbone, name, args.protectors, args.output, weights,
                                   args.max_ids, args.device)
        atomic_write_json(os.path.join(args.output, "backbones.json"), rows)
    atomic_write_bytes(os.path.join(args.output, "backbones.md"), markdown(rows).encode())
    plot(rows, os.path.join(args.output, "backbones.png"))
    logging.info("\n%s", markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
