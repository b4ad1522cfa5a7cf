"""An ordinary torchreid training script, plus the two lines that add PixelFade evaluation.

Everything except the two marked lines is the usual torchreid workflow (as in torchreid's
README). With them, every evaluation protects query and gallery with PixelFade, stores the
protected PNGs under ``log/.../pixelfade-cache`` and reports O2O, P2P, O2P and P2O with Rank-k,
mAP and mINP; ``engine.pixelfade_results`` holds the numbers.

Runs offline: without ``--root`` it first writes a small synthetic Market-1501 dataset.

    python tools/example_existing_script.py --epochs 5
"""
import argparse
import logging
import os
import tempfile

import torchreid  # attribute access works for PyPI (torchreid.reid.*) and source installs

from torchreid_pixelfade import enable_pixelfade  # (1) import the hook
from torchreid_pixelfade.data.synthetic import SyntheticConfig, make_synthetic_market1501


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="", help="torchreid data root (default: synthetic)")
    parser.add_argument("--save-dir", default="log/example_osnet_x0_25")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="PixelFade steps")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = args.root or os.path.join(tempfile.gettempdir(), "pixelfade-example-data")
    if not args.root:
        make_synthetic_market1501(root, SyntheticConfig(num_train_ids=20, num_test_ids=12))

    datamanager = torchreid.data.ImageDataManager(
        root=root, sources="market1501", height=args.height, width=args.width,
        batch_size_train=32, batch_size_test=100, transforms=["random_flip"], workers=0)
    model = torchreid.models.build_model(name="osnet_x0_25", loss="softmax", pretrained=False,
                                         num_classes=datamanager.num_train_pids)
    optimizer = torchreid.optim.build_optimizer(model, optim="amsgrad", lr=0.003)
    scheduler = torchreid.optim.build_lr_scheduler(optimizer, lr_scheduler="cosine",
                                                   max_epoch=args.epochs)
    engine = torchreid.engine.ImageSoftmaxEngine(datamanager, model, optimizer=optimizer,
                                                 scheduler=scheduler, label_smooth=True)

    enable_pixelfade(engine, protector_kwargs={"steps": args.steps},  # (2) turn protection on
                     cache_dir=os.path.join(args.save_dir, "pixelfade-cache"))

    engine.run(save_dir=args.save_dir, max_epoch=args.epochs, print_freq=10, ranks=[1, 5, 10],
               normalize_feature=True)
    return engine.pixelfade_results


if __name__ == "__main__":
    main()
