"""Feature-distance scale of an authorised model, to choose PixelFade's eps for a backbone.

Reads the query split of the configured dataset, extracts eval features of the images and of their
horizontal flips, and writes JSON with the mean square of a feature and the median per-dimension
MSE between an image and its flip, two images of one person, and two people. eps = the flip median
means "as close as the mirrored image"; see README "PixelFade: defaults and switches".
``flip_ratio_median`` is the relative eps that ``pixelfade.eps_flip_multiple 1`` calibrates
(:func:`torchreid_pixelfade.protect.calibration.flip_calibrated_eps`, on the query images here).

Example:
    python tools/calibrate_eps.py --config-file configs/osnet_x0_25_128x64.yaml \
        --root ../shared/data/cuhk03-detected --weights runs/osnet/model.pth --json eps.json
"""
from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import torch

from torchreid_pixelfade import config as C
from torchreid_pixelfade.io import atomic_write_json, load_images
from torchreid_pixelfade.workflows import build_authorized_model, dataset_records, default_device
from torchreid_pixelfade.protect.calibration import flip_distances_of, mirrored_features


def pair_medians(features: torch.Tensor, pids: np.ndarray) -> dict:
    """Median per-dimension MSE over same-identity and different-identity pairs."""
    distances = torch.cdist(features, features).pow(2).numpy() / features.shape[1]
    same = pids[:, None] == pids[None, :]
    upper = np.triu(np.ones_like(same), k=1).astype(bool)
    return {"same_person_median": float(np.median(distances[same & upper])),
            "different_people_median": float(np.median(distances[~same & upper]))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--json", default="eps_calibration.json")
    parser.add_argument("--device", default=default_device())
    C.add_torchreid_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = C.config_from_args(args)
    _, records = dataset_records(cfg, ("query",))
    images = load_images([r.path for r in records], cfg.data.height, cfg.data.width)
    model = build_authorized_model(cfg, args.weights, args.device)
    features, mirrored = mirrored_features(model, images.to(args.device))  # one pass
    report = {"model": cfg.model.name, "weights": args.weights, "dataset": cfg.data.targets[0],
              "height": cfg.data.height, "width": cfg.data.width, "num_images": len(records),
              "feature_dim": features.shape[1],
              "feature_mean_square": float(features.pow(2).mean()),
              "flip_median": float(flip_distances_of(features, mirrored).quantile(0.5)),
              "flip_ratio_median": float(flip_distances_of(features, mirrored,
                                                           relative=True).quantile(0.5)),
              **pair_medians(features, np.array([r.pid for r in records]))}
    atomic_write_json(args.json, report)
    logging.info(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
