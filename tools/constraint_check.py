"""Does the stored image keep the feature constraint? Protect query + gallery, evaluate, report.

For each ``--variant`` (``key=value,...`` overrides of the config's protector hyper-parameters;
an empty string is the config as is, i.e. the library's defaults where it sets nothing), the
query and gallery images of the target dataset (``--max-ids``: of its first identities) are
protected into ``OUTPUT/<variant>/`` as 8-bit PNG files, read back and evaluated. The JSON
report has per variant: the fraction of stored images meeting ``d(f(x_p), f(x)) <= eps`` and
each image that misses it, the forward and backward passes used per image (mean, max), seconds
per image (as recorded while protecting, and as timed in this process on the same
``--timing-images`` query images, variants interleaved: ``cost_vs_first`` is that ratio to
the first variant), SSIM to the originals, and O2O / P2P Rank-1.
Folders are reused: a rerun evaluates what is stored (the manifest records each image's
passes and seconds).

Example (the library's default against the plain T = 100 loop):
    python tools/constraint_check.py --config-file configs/osnet_x0_25_128x64.yaml \
        --root ../shared/data/cuhk03-detected --weights runs/osnet/model.pth \
        --output runs/constraint_check --variant "step_control='fixed'" --variant "" \
        --json constraint_check.json
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import time

import torch

from torchreid_pixelfade import config as C
from torchreid_pixelfade.io import atomic_write_json, load_images
from torchreid_pixelfade.protect import build_protector
from torchreid_pixelfade.store import ProtectedFolder
from torchreid_pixelfade.workflows import (build_authorized_model, dataset_records, default_device,
                                           evaluate_folder, protect_dataset)

logger = logging.getLogger(__name__)


def folder_name(variant: str) -> str:
    """A folder name for a variant's text (``''`` -> ``'config'``)."""
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", variant) or "config"


def variant_config(cfg, variant: str):
    """A frozen copy of ``cfg`` with the variant's overrides of the protector's node."""
    cfg = cfg.clone()
    cfg.defrost()
    opts = []
    for key, value in C.parse_overrides(variant).items():
        opts += [C.option_key(cfg.pixelfade.protector, key), repr(value)]
    C.merge_opts(cfg, opts + ["pixelfade.on_missed_constraint", "keep"])
    cfg.freeze()
    return cfg


def summarize(folder: ProtectedFolder, result: dict) -> dict:
    """One report row from the folder (its manifest) and its evaluation ``result``."""
    protection, settings = folder.summary(), result["settings"]
    return {"num_images": len(folder),
            "constraint_met_fraction": protection["constraint_met_fraction"],
            "missed": [{"key": e.key, "distance": e.distance} for e in folder.images.values()
                       if e.constraint_met is False],
            "steps_mean": protection["steps_used_mean"],
            "steps_max": protection["steps_used_max"],
            "seconds_per_image": protection["seconds_per_image"],
            "ssim": result["privacy"]["ssim"],
            "o2o_rank1": settings["O2O"]["rank1"], "p2p_rank1": settings["P2P"]["rank1"],
            "p2p_minus_o2o_rank1": settings["P2P"]["rank1"] - settings["O2O"]["rank1"]}


def check_variant(cfg, variant: str, weights: str, output: str, device: str,
                  max_ids: int | None) -> dict:
    """Protects (what is missing), evaluates and summarizes one variant; images that miss
    the bound are kept (they are what this tool counts)."""
    cfg = variant_config(cfg, variant)
    out_dir = os.path.join(output, folder_name(variant))
    folder = protect_dataset(cfg, weights, out_dir, ("query", "gallery"), device=device,
                             progress=False, max_ids=max_ids or None)
    result = evaluate_folder(cfg, weights, out_dir, device=device).to_dict()
    # the hyper-parameters as protected (eps as calibrated, with pixelfade.eps_flip_multiple)
    return {"variant": variant, "hparams": dict(folder.identity.hparams), "folder": out_dir,
            **summarize(folder, result)}


def time_variants(cfg, hparams: list[dict], weights: str, device: str, count: int,
                  rounds: int = 2) -> list[float]:
    """Seconds per image of each variant (its hyper-parameters as protected), measured in this
    process on the same ``count`` query images (one batch), the variants interleaved ``rounds``
    times (a round's order rotates) and the fastest round kept: a fair cost ratio on a shared
    machine."""
    source_root, records = dataset_records(cfg, ("query",))
    images = load_images([r.path for r in records[:count]], cfg.data.height, cfg.data.width)
    images = images.to(device)
    model = build_authorized_model(cfg, weights, device, fast_paths=True)  # as protection
    protectors = [build_protector(cfg.pixelfade.protector, model, **values)
                  for values in hparams]
    best = [float("inf")] * len(hparams)
    for round_ in range(rounds):
        for i in [(round_ + k) % len(hparams) for k in range(len(hparams))]:
            began = time.perf_counter()
            protectors[i].protect(images)
            best[i] = min(best[i], (time.perf_counter() - began) / len(images))
    return best


def markdown(rows: list[dict]) -> str:
    """The report as a markdown table (percentages; cost relative to the first row)."""
    lines = ["| variant | met | steps mean / max | s/image as run | cost | SSIM | O2O R1 | "
             "P2P R1 |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        steps = ("n/a" if row["steps_mean"] is None
                 else f"{row['steps_mean']:.1f} / {row['steps_max']}")
        lines.append(f"| {row['variant'] or '(config)'} | "
                     f"{100 * (row['constraint_met_fraction'] or 0):.1f}% | {steps} | "
                     f"{row['seconds_per_image']:.3f} | {row['cost_vs_first']:.2f}x | "
                     f"{row['ssim']:.4f} | {100 * row['o2o_rank1']:.1f} | "
                     f"{100 * row['p2p_rank1']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--output", required=True, help="folder of the protected folders")
    parser.add_argument("--variant", action="append", default=None,
                        help="key=value,... overrides (repeatable; '' = config as is)")
    parser.add_argument("--max-ids", type=int, default=0,
                        help="first identities only (0: the whole query and gallery)")
    parser.add_argument("--timing-images", type=int, default=16,
                        help="images of the in-process cost comparison (0: skip it)")
    parser.add_argument("--json", default="constraint_check.json")
    parser.add_argument("--device", default=default_device())
    C.add_torchreid_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = C.config_from_args(args)
    rows = [check_variant(cfg, variant, args.weights, args.output, args.device, args.max_ids)
            for variant in args.variant or [""]]
    if args.timing_images:
        timed = time_variants(cfg, [row["hparams"] for row in rows], args.weights, args.device,
                              args.timing_images)
        for row, seconds in zip(rows, timed):
            row["timed_seconds_per_image"] = seconds
            row["cost_vs_first"] = seconds / timed[0]
    else:
        for row in rows:
            row["cost_vs_first"] = row["seconds_per_image"] / max(
                rows[0]["seconds_per_image"], 1e-12)
    atomic_write_json(args.json, {"model": cfg.model.name, "weights": args.weights,
                                  "dataset": cfg.data.targets[0], "max_ids": args.max_ids,
                                  "timing_images": args.timing_images,
                                  "threads": torch.get_num_threads(), "rows": rows})
    logger.info("%s\n%s", args.json, markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
