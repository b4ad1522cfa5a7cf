"""Sweep PixelFade hyper-parameters on a few query images: final distance and constraint met.

Each ``--variant`` is a comma-separated list of ``key=value`` overrides of the config's PixelFade
hyper-parameters (an empty string is the config as is). For each, the first ``--num-images``
query images of the target dataset are protected (8-bit, as stored) and the median final feature
distance, the fraction meeting the constraint and the seconds per image are written as JSON.

Example:
    python tools/sweep_pixelfade.py --config-file configs/osnet_x0_25_128x64.yaml \
        --root ../shared/data/cuhk03-detected --weights runs/osnet/model.pth \
        --variant "beta=0.01,beta_temp=0.04,no_replace_last=5" --variant "" --json sweep.json
"""
from __future__ import annotations

import argparse
import logging
import time


from torchreid_pixelfade import config as C
from torchreid_pixelfade.io import atomic_write_json, load_images
from torchreid_pixelfade.workflows import build_authorized_model, dataset_records, default_device
from torchreid_pixelfade.protect import PixelFade


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--variant", action="append", default=None,
                        help="key=value,... overrides (repeatable; '' = config as is)")
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--json", default="sweep_pixelfade.json")
    parser.add_argument("--device", default=default_device())
    C.add_torchreid_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = C.config_from_args(args)
    records = dataset_records(cfg, ("query",))[1][:args.num_images]
    images = load_images([r.path for r in records], cfg.data.height, cfg.data.width)
    model = build_authorized_model(cfg, args.weights, args.device)
    rows = []
    for text in args.variant or [""]:
        kwargs = {**C.protector_kwargs(cfg), "seed": 0, **C.parse_overrides(text)}
        began = time.perf_counter()
        result = PixelFade(model, **kwargs).protect(images.to(args.device))
        rows.append({"variant": text, "hparams": kwargs,
                     "median_distance": float(result.distance.median()),
                     "constraint_met_fraction": float(result.constraint_met.float().mean()),
                     "seconds_per_image": (time.perf_counter() - began) / len(images)})
        logging.info("%-50s median distance %.4f, met %.2f", text or "(config)",
                     rows[-1]["median_distance"], rows[-1]["constraint_met_fraction"])
    atomic_write_json(args.json, {"model": cfg.model.name, "weights": args.weights,
                                  "dataset": cfg.data.targets[0], "num_images": len(images),
                                  "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
