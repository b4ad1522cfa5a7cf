"""Privacy report: protectors side by side, shaped like the paper's Tables 1-4 and Figure 3.

For one dataset and authorised model, each row (a protector, or a PixelFade ablation) is run
through the whole pipeline:

1. protect the test split (query + gallery) and the attacker's images (a subset of the train
   split, evenly spaced) into ``OUT/<row>/test`` and ``OUT/<row>/train``;
2. evaluate the four Re-ID settings on the stored test images (Table 1);
3. privacy of the protected images: SSIM, PSNR and Anderson-Darling against the originals;
4. the recovery attack: a U-Net trained on the attacker's (protected, original) pairs recovers
   the protected test images; recovered-vs-original PSNR/SSIM per image in pixel space (the
   headline) and the official code's min-max way (Table 2); how often a recovered image is
   nearest its own original; and the floor an attacker gets by ignoring the protected image.

Everything is resumable: stored images and trained attackers are reused. Outputs: ``report.md``,
``report.json`` and ``figure.png`` (columns: rows of the report; rows: protected, recovered).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Sequence

import torch

from .. import config as C
from ..attack import load_attacker, recover, run_attack
from ..io import atomic_write_bytes, atomic_write_json, load_images, write_image_grid
from ..protect import list_protectors
from ..store import ProtectedFolder
from ..workflows import evaluate_folder, protect_dataset

logger = logging.getLogger(__name__)

PAPER_ROWS = ("identity", "blur", "mosaic", "avih", "pixelfade")
#: The rows of Tables 5 and 6 (text-to-image, visible-infrared): unprotected, AVIH, PixelFade.
CROSS_MODAL_ROWS = ("identity", "avih", "pixelfade")
ABLATION_ROWS = ("pixelfade:noise_weight=0.2", "pixelfade:noise_weight=0.4",
                 "pixelfade:noise_weight=0.6", "pixelfade:noise_weight=0.8",
                 "pixelfade:target='zeros'", "pixelfade:target='other'",
                 "pixelfade:target='contrastive'")


@dataclasses.dataclass
class AttackConfig:
    """The recovery attack of every row (CPU-sized defaults)."""

    train_images: int = 1000
    epochs: int = 20
    width: int = 16
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0


def parse_row(row: str) -> tuple[str, list]:
    """``"pixelfade:noise_weight=0.6,target='zeros'"`` -> (``pixelfade``, config overrides);
    ``"avih:steps=50"`` sets ``pixelfade.avih.steps``. A row that gives ``eps`` is protected
    with it as given (``pixelfade.eps_flip_multiple`` 0 for that row)."""
    name, _, options = row.partition(":")
    overrides = ["pixelfade.protector", name]
    for key, value in C.parse_overrides(options).items():
        overrides += [C.option_key(name, key), value]
        if key == "eps":
            overrides += ["pixelfade.eps_flip_multiple", 0.0]
    return name, overrides


def row_config(cfg, row: str):
    """A frozen copy of ``cfg`` with the row's protector and options.

    Raises:
        ValueError: for an unknown protector or option (the message names the row).
    """
    name, overrides = parse_row(row)
    if name not in list_protectors():
        raise ValueError(f"report row {row!r}: unknown protector {name!r}; "
                         f"choose one of {list_protectors()} (KEY VALUE overrides after "
                         f"--rows go after '--')")
    row_cfg = cfg.clone()
    row_cfg.defrost()
    C.merge_opts(row_cfg, overrides)
    row_cfg.freeze()
    return row_cfg


def with_eps_of(cfg, folder: ProtectedFolder):
    """``cfg`` with the eps ``folder`` was protected with when that eps was calibrated (so
    that the attacker's images are protected as the test images were, not calibrated on
    their own); ``cfg`` itself otherwise."""
    if not folder.identity.eps_calibration:
        return cfg
    same = cfg.clone()
    same.defrost()
    C.merge_opts(same, [C.option_key(cfg.pixelfade.protector, "eps"),
                        folder.identity.hparams["eps"], "pixelfade.eps_flip_multiple", 0.0])
    same.freeze()
    return same


def folder_name(row: str) -> str:
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in row)


def run_row(cfg, row: str, weights: str, out_dir: str, attack: AttackConfig,
            device: str) -> dict:
    """Protection, Re-ID, privacy and recovery attack of one row; returns its results."""
    row_cfg = row_config(cfg, row)
    folder = os.path.join(out_dir, folder_name(row))
    test, train = os.path.join(folder, "test"), os.path.join(folder, "train")
    tested = protect_dataset(row_cfg, weights, test, ("query", "gallery"), device)
    protect_dataset(with_eps_of(row_cfg, tested), weights, train, ("train",), device,
                    limit=attack.train_images)
    results = evaluate_folder(row_cfg, weights, test, device=device).to_dict()
    attack_result = run_attack(train, test, os.path.join(folder, "attack"), width=attack.width,
                               epochs=attack.epochs, batch_size=attack.batch_size, lr=attack.lr,
                               seed=attack.seed, device=device)
    results["attack"], results["attack_prior"] = attack_result["metrics"], attack_result["prior"]
    results["row"] = row
    return results


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _matching(attack: dict) -> str:
    scores = attack.get("matching")  # absent for a single victim
    if scores is None:
        return "-"
    return f"{_pct(scores['rank1'])} / {_pct(scores['mean_rank_percentile'])}"


def default_rows(cfg) -> tuple[str, ...]:
    """The paper's rows for ``data.type``: Tables 1-2 for images, Tables 5-6 otherwise."""
    return PAPER_ROWS if C.check_data_type(cfg) == "image" else CROSS_MODAL_ROWS


def tables_markdown(rows: Sequence[dict]) -> str:
    """Re-ID per setting (Table 1, 5 or 6 shape: the settings the rows hold) and privacy and
    recovery (Table 2 shape) as markdown."""
    settings = list(rows[0]["settings"]) if rows else []
    head = " | ".join(f"{s} R1 | {s} mAP | {s} mINP" for s in settings)
    lines = ["### Re-ID accuracy on protected images (%)", "",
             f"| method | {head} |", "|---" * (1 + 3 * len(settings)) + "|"]
    for r in rows:
        cells = [_pct(r["settings"][s][k]) for s in settings for k in ("rank1", "mAP", "mINP")]
        lines.append(f"| {r['row']} | " + " | ".join(cells) + " |")
    lines += ["", "### Privacy and recovery attack (Table 2 shape)", "",
              "| method | protected SSIM | protected PSNR | AD | recovered SSIM | recovered PSNR "
              "| recovered SSIM (official) | recovered PSNR (official) | own original: Rank-1 / "
              "rank percentile (%) | s/image |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, a = r["privacy"], r["attack"]
        lines.append(f"| {r['row']} | {p['ssim']:.3f} | {p['psnr']:.2f} | {p['ad']:.1f} | "
                     f"{a['pixel']['ssim']:.3f} | {a['pixel']['psnr']:.2f} | "
                     f"{a['official']['ssim']:.3f} | {a['official']['psnr']:.2f} | "
                     f"{_matching(a)} | "
                     f"{r['protection']['seconds_per_image']:.3f} |")
    if rows:
        prior = rows[0]["attack_prior"]
        lines += ["", "Own original: each recovered image ranks all victims' originals by pixel "
                  "MSE; Rank-1 = own original nearest, rank percentile = its mean rank (0 "
                  "nearest, 50 chance). Floor: the attacker's mean original, output for every "
                  f"victim, scores SSIM {prior['pixel']['ssim']:.3f} / PSNR {prior['pixel']['psnr']:.2f} "
                  f"(official {prior['official']['ssim']:.3f} / "
                  f"{prior['official']['psnr']:.2f})."]
    return "\n".join(lines) + "\n"


def figure(rows: Sequence[dict], out_dir: str, path: str, index: int = 0) -> None:
    """Figure 3 shape: one column per row of the report; protected, recovered, original."""
    protected, recovered, originals = [], [], []
    for r in rows:
        folder = os.path.join(out_dir, folder_name(r["row"]))
        test = ProtectedFolder.open(os.path.join(folder, "test"))
        entry = test.entries()[index]
        image, original = load_images([test.protected_path(entry), test.original_path(entry)],
                                      *test.image_size)
        protected.append(image)
        recovered.append(recover(load_attacker(os.path.join(folder, "attack")), image[None])[0])
        originals.append(original)
    write_image_grid([torch.stack(protected), torch.stack(recovered), torch.stack(originals)],
                     path)


def run_report(cfg, weights: str, out_dir: str, rows: Sequence[str] | None = None,
               attack: AttackConfig = AttackConfig(), device: str = "cpu") -> list[dict]:
    """Runs every row (default: :func:`default_rows`) and writes ``report.md``,
    ``report.json`` and ``figure.png``."""
    rows = default_rows(cfg) if rows is None else rows
    for row in rows:  # every row checked before hours of protection start
        row_config(cfg, row)
    results = []
    for i, row in enumerate(rows):
        logger.info("report row %d/%d: %s", i + 1, len(rows), row)
        results.append(run_row(cfg, row, weights, out_dir, attack, device))
        atomic_write_json(os.path.join(out_dir, "report.json"), results)
    atomic_write_bytes(os.path.join(out_dir, "report.md"), tables_markdown(results).encode())
    figure(results, out_dir, os.path.join(out_dir, "figure.png"))
    logger.info("report written to %s\n%s", out_dir, tables_markdown(results))
    return results
