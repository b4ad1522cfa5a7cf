"""Speed of PixelFade: seconds per image, and the ratio to T x (one forward + backward).

For a torchreid backbone (random weights), a batch size, an image size and T, this measures in one
process (a) the wall time of ``PixelFade(model, steps=T).protect(batch)`` and (b) the time of one
forward and one backward pass to the input on the same batch, and reports

    ratio = time(protect) / (T x time(forward + backward))

The ratio is the overhead of everything that is not the model (masks, noise, momentum, clamp,
8-bit rounding, the reference and final feature passes); the target is at most 1.10.

Example:
    python tools/benchmark_speed.py --backbones osnet_x0_25 resnet50 --batch-size 8 \
        --height 128 --width 64 --steps 20 --json speed.json
"""
from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time

import torch

from torchreid_pixelfade.io import atomic_write_json
from torchreid_pixelfade.models import AuthorizedModel, build_reid_model
from torchreid_pixelfade.protect import PixelFade

logger = logging.getLogger("benchmark_speed")


def time_forward_backward(model: AuthorizedModel, images: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward + backward pass to the input."""
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        x = images.clone().requires_grad_(True)
        began = time.perf_counter()
        grad, = torch.autograd.grad(model(x).pow(2).sum(), x)
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


def time_protect(model: AuthorizedModel, images: torch.Tensor, steps: int, repeats: int) -> float:
    """Median seconds of one PixelFade call of ``steps`` steps on ``images``."""
    protector = PixelFade(model, steps=steps, seed=0)
    protector.protect(images[:1])  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        protector.protect(images)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def benchmark(backbone: str, batch_size: int, height: int, width: int, steps: int,
              repeats: int, device: str) -> dict:
    torch.manual_seed(0)
    model = AuthorizedModel(build_reid_model(backbone), name=backbone).to(device)
    images = torch.rand(batch_size, 3, height, width, device=device)
    step = time_forward_backward(model, images, repeats=max(3, repeats))
    protect = time_protect(model, images, steps, repeats)
    result = {"backbone": backbone, "batch_size": batch_size, "height": height, "width": width,
              "steps": steps, "device": device,
              "seconds_per_image": protect / batch_size,
              "forward_backward_seconds": step, "protect_seconds": protect,
              "ratio_to_T_forward_backward": protect / (steps * step)}
    logger.info("%s: %.3f s/image, ratio %.3f", backbone, result["seconds_per_image"],
                result["ratio_to_T_forward_backward"])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["osnet_x0_25", "resnet50"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="T (the ratio does not depend on it)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default="benchmark_speed.json", help="output file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [benchmark(b, args.batch_size, args.height, args.width, args.steps, args.repeats,
                         args.device) for b in args.backbones]
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "results": results}
    atomic_write_json(args.json, report)
    logger.info("written %s", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
