"""The VI scenario's protection and evaluation: RGB queries search protected infrared images.

What is protected (paper 4.5, design notes engines.md 4.3): every **infrared** test image, with the
authorised model ``f`` = the thermal path of the two-stream net (IR stem, shared trunk, BNNeck),
**un-normalised** BN feature (:func:`~.model.thermal_encoder`; why un-normalised: see
:class:`~.model.ModalityEncoder`). RGB images are never modified. Storage is the image scenario's
own: :func:`protect_infrared` checks that only IR records are given and hands them to
:func:`~torchreid_pixelfade.store.protect_records` (8-bit PNGs + manifest, resumable).

Evaluation (:func:`evaluate_vi`) reads the stored PNGs back, extracts features of

- the RGB test images (originals; visible path),
- the IR originals and the IR protected images (thermal path),

and ranks, with the official protocols of :mod:`.protocol`, the settings that exist in VI
(:data:`VI_SETTINGS`):

- ``rgb_to_ir`` (RGB query, IR gallery; RegDB's official direction, SYSU reversed, the paper's
  "RGB searches protected IR"): ``O2O`` and ``O2P``;
- ``ir_to_rgb`` (IR query, RGB gallery; SYSU's official direction): ``O2O`` and ``P2O``.

A result key is ``"<setting>:<direction>"`` (``"O2P:rgb_to_ir"``), because O2O exists in both
directions. Retrieval uses AGW's distance on L2-normalised features (the encoders return the raw
BN feature, which is what protection constrains; normalising only changes the ranking scale).
SYSU trials re-draw the RGB gallery (trials 0..9); a RegDB folder holds one trial (one model per
trial), and :func:`combine_trials` averages the results of several trial folders.

Library functions here take plain values (records, test sets, models, folders), never a config.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch

from ...constants import IMAGENET_MEAN, IMAGENET_STD
from ...evaluation import O2O, O2P, P2O, EvaluationResult, Setting
from ...evaluation.results import COLUMNS
from ...evaluation.sides import (
    Side,
    original_side,
    path_features,
    privacy_means,
    protected_side,
)
from ...models import AuthorizedModel
from ...store import ProtectedFolder, ProtectionIdentity, protect_records, protection_identity
from .datasets import INFRARED, RegDBData, SysuTestSet, VIRecord
from .model import THERMAL, ModalityEncoder, TwoStreamNet, thermal_encoder, visible_encoder
from .protocol import (
    IR_TO_RGB,
    REPORT_RANKS,
    RGB_TO_IR,
    SYSU_RGB_CAMS,
    SYSU_TRIALS,
    TrialSummary,
    evaluate_sysu_trials,
    regdb_trial,
    run_trials,
)

logger = logging.getLogger(__name__)

#: A VI test set: SYSU-MM01's per-camera file lists or one RegDB trial.
TestSet = SysuTestSet | RegDBData
SYSU, REGDB = "sysu", "regdb"
#: The settings of each direction: the RGB side is never protected.
VI_SETTINGS: dict[str, tuple[Setting, ...]] = {RGB_TO_IR: (O2O, O2P), IR_TO_RGB: (O2O, P2O)}
#: Directions evaluated by default: SYSU both (``rgb_to_ir`` = the paper's wording, ``ir_to_rgb``
#: = the official protocol), RegDB its official visible -> thermal.
DEFAULT_DIRECTIONS = {SYSU: (RGB_TO_IR, IR_TO_RGB), REGDB: (RGB_TO_IR,)}
METRIC_COLUMNS = (*COLUMNS[:3], ("Rank-20", "rank20"), *COLUMNS[3:])


# ------------------------------------------------------------------ test sets and records


def dataset_kind(test_set: TestSet) -> str:
    """:data:`SYSU` for a :class:`SysuTestSet`, :data:`REGDB` for a :class:`RegDBData`.

    Raises:
        TypeError: for anything else.
    """
    if isinstance(test_set, SysuTestSet):
        return SYSU
    if isinstance(test_set, RegDBData):
        return REGDB
    raise TypeError(f"expected a SysuTestSet or a RegDBData, got {type(test_set).__name__}")


def sysu_mode(test_set: SysuTestSet) -> str:
    """``"indoor"`` when the test set's RGB cameras are 1, 2, else ``"all"``."""
    return "indoor" if tuple(test_set.rgb_cameras) == SYSU_RGB_CAMS["indoor"] else "all"


def infrared_test_records(test_set: TestSet) -> list[VIRecord]:
    """The IR test records to protect.

    SYSU: every test image of cameras 3 and 6 (the query of the official direction, the gallery
    of ``rgb_to_ir``; both modes). RegDB: the trial's ``test_thermal`` list.

    Returns:
        Records with paths relative to ``test_set.dataset_dir`` (the ``source_root``).
    """
    if dataset_kind(test_set) == SYSU:
        return test_set.infrared_records()
    return list(test_set.test_thermal)


def visible_test_records(test_set: TestSet, mode: str | None = None) -> list[VIRecord]:
    """The RGB test records: SYSU's cameras of ``mode`` (default: the test set's), every image
    (each trial samples its gallery from them), in camera, id, file order; RegDB
    ``test_visible``."""
    if dataset_kind(test_set) == REGDB:
        return list(test_set.test_visible)
    return test_set.records(SYSU_RGB_CAMS[mode or sysu_mode(test_set)])


# ------------------------------------------------------------------ protection


def infrared_model(net: TwoStreamNet, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD, feature: str = "bn",
                   freeze: bool = True, **fast_paths) -> AuthorizedModel:
    """The authorised model of the VI scenario: the thermal path's un-normalised feature.

    Args:
        net: the two-stream network (shared, not copied; ``channels_last`` converts it).
        mean, std: its input normalisation (ImageNet for AGW).
        feature: ``"bn"`` (BNNeck output, default) or ``"pool"``.
        freeze: freeze ``net``'s parameters (False while it is still being trained).
        **fast_paths: ``channels_last``, ``precision``, ``compile`` of
            :class:`AuthorizedModel` (e.g. from :func:`resolve_fast_paths`); none: float32.

    Returns:
        ``AuthorizedModel``: ``(B, 3, H, W)`` pixels in [0, 1] -> ``(B, D)`` raw features. Its
        name, recorded in manifests, says which feature ``f`` is (``AGWTwoStream/thermal/bn``).
    """
    return AuthorizedModel(thermal_encoder(net, feature), mean, std,
                           name=f"{type(net).__name__}/thermal/{feature}", freeze=freeze,
                           **fast_paths)


def visible_model(net: TwoStreamNet, mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD, feature: str = "bn",
                  freeze: bool = True) -> AuthorizedModel:
    """The visible path as a feature extractor for RGB queries (see :func:`infrared_model`)."""
    return AuthorizedModel(visible_encoder(net, feature), mean, std,
                           name=f"{type(net).__name__}/visible/{feature}", freeze=freeze)


def _check_thermal(model: AuthorizedModel) -> ModalityEncoder:
    """The thermal encoder inside ``model``; ValueError unless it is the un-normalised one."""
    encoder = model.model
    if not isinstance(encoder, ModalityEncoder) or encoder.modal != THERMAL:
        raise ValueError(f"the VI authorised model must wrap thermal_encoder(net), got "
                         f"{type(encoder).__name__}")
    if encoder.normalize:
        raise ValueError("the VI authorised model must return the un-normalised feature")
    return encoder


def infrared_identity(protector, model: AuthorizedModel, height: int, width: int, dataset: str,
                      weights=None) -> ProtectionIdentity:
    """The identity of a VI protection run (:func:`~torchreid_pixelfade.store.protection_identity`).

    Args:
        protector: the protector (any registered one).
        model: :func:`infrared_model` of the net (checked: thermal path, un-normalised).
        height, width: the stored size (the model's input size; AGW 288x144).
        dataset: the dataset's name (``"sysu_mm01"``, ``"regdb_trial3"`` ...).
        weights: the weights file the net was loaded from; default: the net itself (its state
            dict is hashed).
    """
    encoder = _check_thermal(model)
    return protection_identity(protector, model, encoder.net if weights is None else weights,
                               height, width, dataset)


def protect_infrared(protector, records: Sequence[VIRecord], out_dir: str,
                     identity: ProtectionIdentity, source_root: str, **kwargs) -> ProtectedFolder:
    """:func:`~torchreid_pixelfade.store.protect_records` for IR records only.

    Args:
        protector, out_dir, identity, source_root, **kwargs: as ``protect_records``
            (``source_root`` = ``test_set.dataset_dir``).
        records: :func:`infrared_test_records`.

    Raises:
        ValueError: if a record is not infrared (the RGB side is never protected), or as
            ``protect_records``.
    """
    visible = [r.path for r in records if getattr(r, "modality", None) != INFRARED]
    if visible:
        raise ValueError(f"{len(visible)} records are not infrared (first: {visible[0]}); the "
                         "VI scenario protects IR images only")
    return protect_records(protector, records, out_dir, identity, source_root, **kwargs)


# ------------------------------------------------------------------ features


#: Features and labels of one modality's test images: the RGB side holds form ``"original"``,
#: the IR side also ``"protected"`` and per-image privacy (camids are physical cameras). The
#: class and the side builders ``path_features``, ``original_side``, ``protected_side`` are the
#: shared ones of ``torchreid_pixelfade.evaluation.sides``, re-exported here.
ModalitySide = Side


# ------------------------------------------------------------------ ranking


def setting_key(item: Setting, direction: str) -> str:
    """The result key of a setting in a direction, ``"O2P:rgb_to_ir"``."""
    return f"{item.name}:{direction}"


def _infrared_form(item: Setting, direction: str) -> str:
    """The form of the IR side in ``item`` (the RGB side must be original)."""
    rgb, ir = (item.query, item.gallery) if direction == RGB_TO_IR else (item.gallery, item.query)
    if rgb != "original":
        raise ValueError(f"{item.name} in {direction}: RGB images are never protected")
    return ir


def _default_trials(test_set: TestSet, trials: Sequence[int] | None) -> tuple[int, ...]:
    if dataset_kind(test_set) == SYSU:
        return tuple(SYSU_TRIALS if trials is None else trials)
    if trials is not None and tuple(trials) != (test_set.trial,):
        raise ValueError(f"a RegDB test set holds trial {test_set.trial} only (one model per "
                         f"trial), got trials {tuple(trials)}; use combine_trials")
    return (test_set.trial,)


def _rank_one(visible: ModalitySide, infrared: ModalitySide, ir_form: str, test_set: TestSet,
              direction: str, mode: str | None, shot: str, trials: tuple[int, ...]
              ) -> TrialSummary:
    """One setting in one direction, every trial."""
    ir = infrared.features[ir_form]
    rgb = visible.features["original"]
    if dataset_kind(test_set) == SYSU:
        return evaluate_sysu_trials(ir, infrared.pids, infrared.camids, rgb, visible.pids,
                                    visible.camids, mode or sysu_mode(test_set), shot,
                                    direction, trials)
    return run_trials(lambda _: regdb_trial(rgb, visible.pids, ir, infrared.pids, direction),
                      trials)


def rank_settings(visible: ModalitySide, infrared: ModalitySide, test_set: TestSet,
                  directions: Sequence[str] | None = None, mode: str | None = None,
                  shot: str = "single", trials: Sequence[int] | None = None
                  ) -> dict[str, TrialSummary]:
    """Every VI setting whose forms ``infrared`` has, per direction, over the trials.

    Args:
        visible: RGB side (every RGB test image of the mode, :func:`visible_test_records`).
        infrared: IR side (:func:`infrared_test_records`), ``"original"`` and maybe
            ``"protected"`` features.
        test_set: the SYSU test set or RegDB trial (for the protocol and trial numbers).
        directions: default :data:`DEFAULT_DIRECTIONS` of the dataset.
        mode: SYSU ``"all"`` / ``"indoor"``; default the test set's.
        shot: SYSU ``"single"`` / ``"multi"``.
        trials: SYSU gallery draws (default 0..9); RegDB: the test set's trial only.

    Returns:
        ``{setting_key: TrialSummary}`` in direction, then setting order.
    """
    kind = dataset_kind(test_set)
    trials = _default_trials(test_set, trials)
    results = {}
    for direction in directions or DEFAULT_DIRECTIONS[kind]:
        for item in VI_SETTINGS[direction]:
            ir_form = _infrared_form(item, direction)
            if ir_form in infrared.features:
                results[setting_key(item, direction)] = _rank_one(
                    visible, infrared, ir_form, test_set, direction, mode, shot, trials)
    return results


def evaluate_original(visible: AuthorizedModel, infrared: AuthorizedModel, test_set: TestSet,
                      height: int, width: int, directions: Sequence[str] | None = None,
                      mode: str | None = None, shot: str = "single",
                      trials: Sequence[int] | None = None, batch_size: int = 128,
                      device: str | torch.device = "cpu") -> dict[str, TrialSummary]:
    """O2O only (no protection): what training evaluates.

    Args:
        visible, infrared: :func:`visible_model` and :func:`infrared_model` of the net.
        test_set: SYSU test set or RegDB trial.
        height, width: the model's input size.
        directions, mode, shot, trials: as :func:`rank_settings`.
        batch_size, device: feature extraction.

    Returns:
        ``{"O2O:<direction>": TrialSummary}``.
    """
    rgb = original_side(visible, visible_test_records(test_set, mode), height, width,
                        batch_size, device)
    ir = original_side(infrared, infrared_test_records(test_set), height, width, batch_size,
                       device)
    return rank_settings(rgb, ir, test_set, directions, mode, shot, trials)


# ------------------------------------------------------------------ results


@dataclasses.dataclass
class VIEvaluationResult(EvaluationResult):
    """:class:`~torchreid_pixelfade.evaluation.EvaluationResult` of the VI scenario.

    The inherited fields keep their meaning; ``settings`` holds the trial averages, keyed
    ``"<setting>:<direction>"``, with ``rank1, rank5, rank10, rank20, mAP, mINP`` fractions in
    [0, 1]. ``num_query`` counts the RGB test images evaluated, ``num_gallery`` the IR ones (the
    protected side; privacy is their mean).

    Attributes:
        trials: ``{setting key: [{"trial": t, "rank1": ..., "mINP": ...}, ...]}`` per trial.
        vi_protocol: ``{"dataset": "sysu" | "regdb", "mode", "shot", "directions", "trials"}``.
    """

    trials: dict = dataclasses.field(default_factory=dict)
    vi_protocol: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> VIEvaluationResult:
        """Reads a ``results.json`` dictionary written by :meth:`write`."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_markdown(self) -> str:
        """Averaged table, one per-trial table per setting, privacy and protection lines."""
        lines = [_protocol_line(self.vi_protocol), "", *_table(self.settings, "setting")]
        for key, rows in self.trials.items():
            table = {str(row["trial"]): row for row in rows}
            lines += ["", f"Per trial, {key}:", "", *_table(table, "trial")]
        lines += ["", *_summary_lines(self)]
        return "\n".join(lines) + "\n"


def _protocol_line(protocol: dict) -> str:
    if not protocol:
        return "Visible-infrared evaluation."
    mode = f", {protocol['mode']}-search, {protocol['shot']}-shot" if protocol.get("mode") else ""
    return (f"Visible-infrared evaluation on {protocol['dataset']}{mode}, directions "
            f"{', '.join(protocol['directions'])}, trials {protocol['trials']} (averaged).")


def _table(rows: dict, label: str) -> list[str]:
    lines = [f"| {label} | " + " | ".join(c for c, _ in METRIC_COLUMNS) + " |",
             "|---" * (len(METRIC_COLUMNS) + 1) + "|"]
    for name, row in rows.items():
        values = [row.get(key, float("nan")) for _, key in METRIC_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
    return lines


def _summary_lines(result: EvaluationResult) -> list[str]:
    privacy, protection = result.privacy, result.protection
    met = protection.get("constraint_met_fraction")
    constraint = f", constraint met for {100 * met:.1f}% of images." if met is not None else "."
    return [(f"Privacy of the {result.num_gallery} stored IR images (protected vs original): "
             f"SSIM {privacy['ssim']:.3f}, PSNR {privacy['psnr']:.2f} dB, Anderson-Darling "
             f"{privacy['ad']:.1f} (median {privacy['ad_median']:.1f})."),
            (f"Protection: {protection['name']}, {protection['steps']} steps, "
             f"{protection['seconds_per_image']:.3f} s per image{constraint}")]


def _per_trial(summary: TrialSummary) -> list[dict]:
    return [{"trial": t, **row} for t, row in zip(summary.trials, summary.per_trial(REPORT_RANKS))]


def evaluate_vi(visible: AuthorizedModel, infrared: AuthorizedModel,
                folder: ProtectedFolder | str, test_set: TestSet,
                directions: Sequence[str] | None = None, mode: str | None = None,
                shot: str = "single", trials: Sequence[int] | None = None,
                batch_size: int = 128, device: str | torch.device = "cpu",
                dataset: str | None = None) -> VIEvaluationResult:
    """Evaluates a folder of protected IR test images against the original RGB queries.

    Every number comes from images read from disk: RGB originals from the dataset, IR
    originals and protected PNGs through the folder, all at the folder's stored size.

    Args:
        visible: :func:`visible_model` of the net (RGB images, originals only).
        infrared: :func:`infrared_model` of the net (IR originals and protected).
        folder: the folder written by :func:`protect_infrared` (or its path).
        test_set: the SYSU test set or RegDB trial the folder was made from.
        directions: default :data:`DEFAULT_DIRECTIONS` (SYSU both, RegDB ``rgb_to_ir``).
        mode: SYSU ``"all"`` / ``"indoor"``; default the test set's.
        shot: SYSU ``"single"`` (official) or ``"multi"``.
        trials: SYSU gallery draws (default 0..9); RegDB the test set's trial.
        batch_size, device: image loading and feature extraction.
        dataset: name in the result; default the folder identity's dataset.

    Returns:
        A :class:`VIEvaluationResult` (``.write("results.json")`` writes ``results.md`` too).

    Raises:
        ValueError: if an IR test image is not stored in the folder, or for invalid protocol
            arguments.
    """
    folder = folder if isinstance(folder, ProtectedFolder) else ProtectedFolder.open(folder)
    height, width = folder.image_size
    rgb_records = visible_test_records(test_set, mode)
    ir_records = infrared_test_records(test_set)
    rgb = original_side(visible, rgb_records, height, width, batch_size, device)
    ir = protected_side(infrared, folder, ir_records, batch_size, device,
                        what="IR test images")
    ranked = rank_settings(rgb, ir, test_set, directions, mode, shot, trials)
    kind = dataset_kind(test_set)
    protocol = {"dataset": kind, "directions": list(directions or DEFAULT_DIRECTIONS[kind]),
                "trials": list(_default_trials(test_set, trials)),
                "mode": (mode or sysu_mode(test_set)) if kind == SYSU else None,
                "shot": shot if kind == SYSU else None}
    logger.info("%s: %s", folder.path, {k: round(s.mean()["rank1"], 4) for k, s in ranked.items()})
    return VIEvaluationResult(
        settings={k: s.mean(REPORT_RANKS) for k, s in ranked.items()},
        privacy=privacy_means(ir.privacy), protection=folder.summary(),
        num_query=len(rgb_records),
        num_gallery=len(ir_records), model=infrared.name,
        dataset=dataset or folder.identity.dataset or test_set.dataset_dir,
        trials={k: _per_trial(s) for k, s in ranked.items()}, vi_protocol=protocol)


def combine_trials(results: Sequence[VIEvaluationResult]) -> VIEvaluationResult:
    """One result of several trial results (RegDB: one folder and model per trial).

    Per-trial rows are concatenated and the settings re-averaged over all of them; privacy and
    protection are averaged weighted by each result's IR image count, except ``ad_median``,
    which becomes the median of the per-result medians (the per-image values are not kept).

    Raises:
        ValueError: for no results, or results with different setting keys.
    """
    if not results:
        raise ValueError("combine_trials: no results")
    keys = list(results[0].settings)
    if any(list(r.settings) != keys for r in results):
        raise ValueError("combine_trials: the results have different settings")
    trials = {k: [row for r in results for row in r.trials[k]] for k in keys}
    settings = {k: {m: float(np.mean([row[m] for row in rows])) for m in rows[0] if m != "trial"}
                for k, rows in trials.items()}
    weights = np.array([r.num_gallery for r in results], float)
    privacy = {m: float(np.average([r.privacy[m] for r in results], weights=weights))
               for m in ("ssim", "psnr", "ad")}
    privacy["ad_median"] = float(np.median([r.privacy["ad_median"] for r in results]))
    first = results[0]
    protocol = {**first.vi_protocol, "trials": [t for r in results for t in
                                                r.vi_protocol.get("trials", [])]}
    return dataclasses.replace(
        first, settings=settings, privacy=privacy,
        protection=_combined_protection([r.protection for r in results], weights),
        num_query=int(sum(r.num_query for r in results)), num_gallery=int(weights.sum()),
        protected_dir=None, trials=trials, vi_protocol=protocol)


def _combined_protection(protections: Sequence[dict], weights: np.ndarray) -> dict:
    met = [p["constraint_met_fraction"] for p in protections]
    return {**protections[0],
            "constraint_met_fraction": (None if any(m is None for m in met)
                                        else float(np.average(met, weights=weights))),
            "seconds_per_image": float(np.average([p["seconds_per_image"] for p in protections],
                                                  weights=weights))}


__all__ = [
    "DEFAULT_DIRECTIONS",
    "REGDB",
    "SYSU",
    "VI_SETTINGS",
    "ModalitySide",
    "VIEvaluationResult",
    "combine_trials",
    "dataset_kind",
    "evaluate_original",
    "evaluate_vi",
    "infrared_identity",
    "infrared_model",
    "infrared_test_records",
    "original_side",
    "path_features",
    "protect_infrared",
    "protected_side",
    "rank_settings",
    "setting_key",
    "sysu_mode",
    "visible_model",
    "visible_test_records",
]
