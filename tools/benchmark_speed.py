"""Speed of PixelFade and of its fast paths: images/s, the ratio to T x (one forward + backward),
the official loop's cost, and each fast path's speed-up and quality against plain float32.

For a torchreid backbone (random weights), a batch size, an image size and T, this measures in one
process, in ``--repeats`` rounds that each time every variant back to back in a rotating order (so
load from other processes hits them alike; every ratio is taken within a round, then the median):

- plain: the wall time of ``PixelFade(model, steps=T, seed=0).protect(batch)`` and of one forward
  and one backward pass to the input on the same batch (median of 3), and

      ratio_to_T_forward_backward = time(protect) / (T x time(forward + backward))

  the overhead of everything that is not the model (masks, noise, momentum, clamp, 8-bit rounding,
  the reference and final feature passes). The adaptive final phase stops an image once it meets
  eps, or runs it up to ``extra_steps`` past T and then retries it from new draws (``retries``),
  so ``ratio_to_passes_forward_backward`` divides by the mean passes the images used
  (``passes_mean``) instead of T;
- official: one forward + backward with the weights requiring grad (``loss.backward()``; the
  official code does not freeze the model, so each of its steps also computes the weights'
  gradients). Its floor is T such passes per batch (``official.images_per_second``), an upper
  bound on its throughput; ``official_speedup`` is protect's speed-up over it per image at T
  steps and per pass;
- each option (``--options``; ``auto`` is ``resolve_fast_paths`` for the device, ``a+b``
  combines options; one whose arguments equal another's is reported as ``same_as`` it): its
  protect and forward + backward speed-ups over plain, and its quality against plain on the same
  seed: the cosine of the input gradients of the protection loss and the features' relative
  error, and the protected images measured by the plain float32 model (constraint met, distance),
  their SSIM to the originals and their 8-bit differences from plain's.

``--forward-backward-only`` skips protect (forward + backward speed-ups and gradients only).

Example:
    OMP_NUM_THREADS=1 python tools/benchmark_speed.py --backbones osnet_x0_25 resnet50 \
        --batch-size 8 --height 128 --width 64 --steps 20 --repeats 5 --threads 1 \
        --options auto channels_last bf16 --json speed.json
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import logging
import platform
import statistics
import time
from typing import Iterator

import torch

from torchreid_pixelfade.io import atomic_write_json
from torchreid_pixelfade.metrics.privacy import ssim
from torchreid_pixelfade.models import AuthorizedModel, build_reid_model, resolve_fast_paths
from torchreid_pixelfade.protect import PixelFade
from torchreid_pixelfade.protect.functional import feature_distance

logger = logging.getLogger("benchmark_speed")

#: ``--options`` names and the :class:`AuthorizedModel` arguments they set (``auto``: resolved)
OPTIONS = {"channels_last": {"channels_last": True}, "tf32": {"precision": "tf32"},
           "bf16": {"precision": "bf16"}, "fp16": {"precision": "fp16"},
           "compile": {"compile": True}}
PLAIN = {"channels_last": False, "precision": "fp32", "compile": False}


def option_arguments(name: str, device: str) -> dict:
    """The :class:`AuthorizedModel` fast-path arguments of an ``--options`` name.

    Raises:
        ValueError: for an unknown name (the valid ones are listed).
    """
    arguments = dict(PLAIN)
    for part in name.split("+"):
        if part == "auto":
            arguments.update(resolve_fast_paths(device))
        elif part in OPTIONS:
            arguments.update(OPTIONS[part])
        else:
            raise ValueError(f"unknown option {part!r}; choose auto, {', '.join(OPTIONS)} or "
                             f"a '+' combination")
    return arguments


@contextlib.contextmanager
def trainable(module: torch.nn.Module) -> Iterator[None]:
    """The parameters of ``module`` require grad for the block (flags restored, grads freed)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(True)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
            parameter.grad = None


def forward_backward_once(model: AuthorizedModel, images: torch.Tensor) -> float:
    """Seconds of one forward + backward pass to the input."""
    x = images.clone().requires_grad_(True)
    began = time.perf_counter()
    torch.autograd.grad(model(x).pow(2).sum(), x)
    return time.perf_counter() - began


def official_forward_backward_once(model: AuthorizedModel, images: torch.Tensor) -> float:
    """Seconds of one forward + backward pass to the input and to the weights (``backward()``
    with the weights requiring grad, as the official loop's unfrozen model)."""
    x = images.clone().requires_grad_(True)
    with trainable(model.model):
        began = time.perf_counter()
        model(x).pow(2).sum().backward()
        return time.perf_counter() - began


def protect_once(model: AuthorizedModel, images: torch.Tensor, steps: int):
    """``(seconds, result)`` of a fresh ``PixelFade(model, steps=steps, seed=0)`` on ``images``
    (the same draws on every call)."""
    protector = PixelFade(model, steps=steps, seed=0)
    began = time.perf_counter()
    result = protector.protect(images)
    return time.perf_counter() - began, result


def timed_round(models: dict, images: torch.Tensor, steps: int | None,
                order: list[str]) -> dict:
    """One round: per variant in ``order``, a forward + backward (median of 3) then, unless
    ``steps`` is None, a protect, back to back, and the official forward + backward next to
    plain's; ``{name: {'fb', 'protect', 'result'}}`` plus ``official``."""
    measured = {}
    for name in order:
        model = models[name]
        measured[name] = {"fb": statistics.median(forward_backward_once(model, images)
                                                  for _ in range(3))}
        if steps is not None:
            measured[name]["protect"], measured[name]["result"] = protect_once(model, images,
                                                                               steps)
        if name == "plain":
            measured["official"] = statistics.median(
                official_forward_backward_once(model, images) for _ in range(3))
    return measured


def timed_rounds(models: dict, images: torch.Tensor, steps: int | None,
                 rounds: int) -> list[dict]:
    """``rounds`` of :func:`timed_round`, the variants' order rotated by one per round (so load
    from other processes hits them alike); every ratio is then taken within a round."""
    names = list(models)
    return [timed_round(models, images, steps, names[r % len(names):] + names[:r % len(names)])
            for r in range(rounds)]


def per_round(rounds: list[dict], value) -> list[float]:
    """``[value(round) for each round]``."""
    return [float(value(r)) for r in rounds]


def gradient_agreement(plain: AuthorizedModel, other: AuthorizedModel,
                       images: torch.Tensor) -> dict:
    """How ``other``'s input gradient and features agree with ``plain``'s.

    The loss is PixelFade's: the features' mean squared distance to the originals' (by
    ``plain``), at the images plus N(0, 0.05^2) noise (at the images themselves it is 0).

    Returns:
        ``gradient_cosine_min``/``_mean`` over images, ``feature_relative_error`` (max over
        images of ||f_other - f_plain|| / ||f_plain||).
    """
    generator = torch.Generator(device=images.device).manual_seed(0)
    noise = torch.randn(images.shape, generator=generator, device=images.device)
    start = (images + 0.05 * noise).clamp(0, 1)
    with torch.no_grad():
        reference = plain(images)
    grads, features = [], []
    for model in (plain, other):
        x = start.clone().requires_grad_(True)
        f = model(x)
        grad, = torch.autograd.grad(feature_distance(f, reference).sum(), x)
        grads.append(grad.flatten(1).double())
        features.append(f.detach().double())
    unit = [torch.nn.functional.normalize(g, dim=1, eps=1e-300) for g in grads]
    cosine = (unit[0] * unit[1]).sum(dim=1)  # cosine_similarity would clamp tiny norms
    error = (features[1] - features[0]).norm(dim=1) / features[0].norm(dim=1).clamp_min(1e-12)
    return {"gradient_cosine_min": float(cosine.min()),
            "gradient_cosine_mean": float(cosine.mean()),
            "feature_relative_error": float(error.max())}


def protected_agreement(plain: AuthorizedModel, images: torch.Tensor, steps: int, plain_result,
                        result) -> dict:
    """``result`` (protected with a fast path) against ``plain_result`` (plain, same seed),
    both measured by the plain float32 model."""
    judge = PixelFade(plain, steps=steps, seed=0)
    with torch.no_grad():
        reference = plain(images)
    mine, theirs = (judge.finish(r.images, reference) for r in (result, plain_result))
    levels = (mine.images - theirs.images).abs().mul(255).round()
    return {"constraint_met_fp32": float(mine.constraint_met.float().mean()),
            "plain_constraint_met": float(theirs.constraint_met.float().mean()),
            "distance_fp32_mean": float(mine.distance.mean()),
            "plain_distance_mean": float(theirs.distance.mean()),
            "ssim_mean": float(ssim(mine.images, images).mean()),
            "plain_ssim_mean": float(ssim(theirs.images, images).mean()),
            "pixels_differing_fraction": float((levels > 0).float().mean()),
            "max_difference_8bit_levels": int(levels.max()),
            "passes_mean": float(result.steps.float().mean())}


def build_variants(backbone: str, names: list[str], device: str) -> tuple[dict, dict]:
    """``(models, aliases)``: ``models['plain']`` and one model per distinct option (same
    weights); ``aliases`` maps an option whose arguments equal another's to that one."""
    torch.manual_seed(0)
    net = build_reid_model(backbone)
    models = {"plain": AuthorizedModel(copy.deepcopy(net), name=backbone).to(device)}
    arguments, aliases = {"plain": PLAIN}, {}
    for name in names:
        wanted = option_arguments(name, device)
        same = next((known for known, args in arguments.items() if args == wanted), None)
        if same is not None:
            aliases[name] = same
            continue
        arguments[name] = wanted
        models[name] = AuthorizedModel(copy.deepcopy(net), name=backbone, **wanted).to(device)
    return models, aliases


def warm_up(models: dict, images: torch.Tensor, steps: int | None) -> dict[str, float]:
    """Runs each model once (compiled ones on a full protect, so every shape compiles, unless
    ``steps`` is None); returns the seconds of each compiled model's first call."""
    first_calls = {}
    for name, model in models.items():
        if model.fast_paths.compile:
            began = time.perf_counter()
            if steps is None:
                forward_backward_once(model, images)
            else:
                protect_once(model, images, steps)
            first_calls[name] = time.perf_counter() - began
            logger.info("%s: first call (compiling) %.1f s", name, first_calls[name])
        elif steps is not None:
            protect_once(model, images[:1], steps)
        forward_backward_once(model, images)
    official_forward_backward_once(models["plain"], images)
    return first_calls


def benchmark(backbone: str, batch_size: int, height: int, width: int, steps: int,
              repeats: int, device: str, options: list[str] | None = None,
              forward_backward_only: bool = False) -> dict:
    """The plain, official and per-option measurements of one backbone (module docstring);
    seconds are medians over ``repeats`` rounds, ratios medians of per-round ratios. With
    ``forward_backward_only`` no protect runs: forward + backward and gradients only."""
    models, aliases = build_variants(backbone, list(options or []), device)
    images = torch.rand(batch_size, 3, height, width, device=device,
                        generator=torch.Generator(device=device).manual_seed(0))
    protect_steps = None if forward_backward_only else steps
    first_calls = warm_up(models, images, protect_steps)
    rounds = timed_rounds(models, images, protect_steps, repeats)
    fb = per_round(rounds, lambda r: r["plain"]["fb"])
    official = per_round(rounds, lambda r: r["official"])
    result = {"backbone": backbone, "batch_size": batch_size, "height": height, "width": width,
              "steps": steps, "device": device, "forward_backward_seconds": median(fb),
              "forward_backward_runs": fb,
              "official": {"forward_backward_seconds": median(official),
                           "images_per_second": batch_size / (steps * median(official)),
                           "forward_backward_ratio": median(
                               per_round(rounds, lambda r: r["official"] / r["plain"]["fb"]))}}
    if not forward_backward_only:
        result.update(protect_summary(rounds, batch_size, steps))
    result["fast_paths"] = {name: option_result(name, models, rounds, images, steps,
                                                first_calls.get(name))
                            for name in models if name != "plain"}
    for name, same in aliases.items():
        result["fast_paths"][name] = {"same_as": same,
                                      "options": option_arguments(name, device)}
    log_result(result)
    return result


def median(values: list[float]) -> float:
    return statistics.median(values)


def protect_summary(rounds: list[dict], batch_size: int, steps: int) -> dict:
    """Plain protect's times, images/s, ratios to the floors and speed-up over the official
    floor (per image at T steps, and per forward + backward pass)."""
    passes = float(rounds[-1]["plain"]["result"].steps.float().mean())
    protect = per_round(rounds, lambda r: r["plain"]["protect"])
    return {"seconds_per_image": median(protect) / batch_size, "protect_seconds": median(protect),
            "ratio_to_T_forward_backward": median(
                per_round(rounds, lambda r: r["plain"]["protect"] / (steps * r["plain"]["fb"]))),
            "protect_runs": protect, "images_per_second": batch_size / median(protect),
            "passes_mean": passes,
            "ratio_to_passes_forward_backward": median(
                per_round(rounds, lambda r: r["plain"]["protect"] / (passes * r["plain"]["fb"]))),
            "official_speedup": official_speedups(rounds, "plain", steps, passes)}


def official_speedups(rounds: list[dict], name: str, steps: int, passes: float) -> dict:
    """``name``'s protect against the official floor: per image at T steps (``T x official
    forward + backward / protect``) and per pass (the same with ``passes``, for runs whose
    adaptive final phase used more or fewer passes than T)."""
    return {"per_image": median(per_round(
                rounds, lambda r: steps * r["official"] / r[name]["protect"])),
            "per_pass": median(per_round(
                rounds, lambda r: passes * r["official"] / r[name]["protect"]))}


def option_result(name: str, models: dict, rounds: list[dict], images: torch.Tensor,
                  steps: int, first_call: float | None) -> dict:
    """One option's speed-ups against plain and the official floor, and its quality checks."""
    speedups = per_round(rounds, lambda r: r["plain"]["fb"] / r[name]["fb"])
    entry = {"options": dataclasses.asdict(models[name].fast_paths),
             "forward_backward_seconds": median(per_round(rounds, lambda r: r[name]["fb"])),
             "forward_backward_speedup": median(speedups),
             "forward_backward_speedup_runs": speedups,
             "quality": gradient_agreement(models["plain"], models[name], images)}
    if "protect" in rounds[-1][name]:
        protect = option_protect(name, models, rounds, images, steps)
        entry["quality"].update(protect.pop("quality"))
        entry.update(protect)
    if first_call is not None:
        entry["first_call_seconds"] = first_call
    return entry


def option_protect(name: str, models: dict, rounds: list[dict], images: torch.Tensor,
                   steps: int) -> dict:
    """An option's protect times, speed-ups and protected-image quality."""
    protect = per_round(rounds, lambda r: r[name]["protect"])
    speedups = per_round(rounds, lambda r: r["plain"]["protect"] / r[name]["protect"])
    result = rounds[-1][name]["result"]
    passes = float(result.steps.float().mean())
    quality = protected_agreement(models["plain"], images, steps,
                                  rounds[-1]["plain"]["result"], result)
    return {"protect_seconds": median(protect), "images_per_second": len(images) / median(protect),
            "protect_runs": protect, "speedup": median(speedups), "speedup_runs": speedups,
            "official_speedup": official_speedups(rounds, name, steps, passes),
            "quality": quality}


def log_result(result: dict) -> None:
    logger.info("%s: forward + backward %.3f s, official %.3f s", result["backbone"],
                result["forward_backward_seconds"], result["official"]["forward_backward_seconds"])
    if "protect_seconds" in result:
        logger.info("  plain: %.2f images/s, ratio %.3f to T x (forward + backward), %.3f to "
                    "%.1f passes; x%.2f the official floor per pass", result["images_per_second"],
                    result["ratio_to_T_forward_backward"],
                    result["ratio_to_passes_forward_backward"], result["passes_mean"],
                    result["official_speedup"]["per_pass"])
    for name, entry in result["fast_paths"].items():
        if "same_as" in entry:
            logger.info("  %s = %s %s", name, entry["same_as"], entry["options"])
            continue
        logger.info("  %s: x%.2f forward + backward, gradient cosine %.5f", name,
                    entry["forward_backward_speedup"], entry["quality"]["gradient_cosine_min"])
        if "speedup" in entry:
            logger.info("    x%.2f protect, x%.2f the official floor per pass; constraint met "
                        "(fp32) %.2f vs %.2f", entry["speedup"],
                        entry["official_speedup"]["per_pass"],
                        entry["quality"]["constraint_met_fp32"],
                        entry["quality"]["plain_constraint_met"])


def default_options(device: str) -> list[str]:
    """``auto``, channels_last and bf16; TF32 too on CUDA."""
    names = ["auto", "channels_last", "bf16"]
    return names + ["tf32"] if torch.device(device).type == "cuda" else names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["osnet_x0_25", "resnet50"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="T (the ratio does not depend on it)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="rounds; each times every variant's protect and forward + backward")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--options", nargs="*", default=None,
                        help=f"fast paths to compare with plain: auto, {', '.join(OPTIONS)}, or "
                             f"'+' combinations (default: auto channels_last bf16, and tf32 on "
                             f"CUDA; none: plain only)")
    parser.add_argument("--forward-backward-only", action="store_true",
                        help="no protect: forward + backward speed-ups and gradients only")
    parser.add_argument("--json", default="benchmark_speed.json", help="output file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    options = default_options(args.device) if args.options is None else args.options
    for name in options:
        option_arguments(name, args.device)  # fails early on an unknown name
    results = [benchmark(b, args.batch_size, args.height, args.width, args.steps, args.repeats,
                         args.device, options, args.forward_backward_only)
               for b in args.backbones]
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "repeats": args.repeats,
              "options": options, "results": results}
    atomic_write_json(args.json, report)
    logger.info("written %s", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
