"""The T2I scenario's protection and evaluation: text queries search protected gallery images.

What is protected (paper 4.5, "searching protected images by text"; design notes engines.md 4.3):
every **gallery image** of the test (or val) split, with the authorised model ``f`` = the image
encoder (IRRA: ``encode_image``'s un-normalised CLS feature, wrapped in an
:class:`~torchreid_pixelfade.models.AuthorizedModel` with CLIP's mean and std). Captions are
never changed and the text encoder never runs during protection. Storage is the image scenario's
own: :func:`protect_gallery` checks that only gallery images are given and hands them to
:func:`~torchreid_pixelfade.store.protect_records` (8-bit PNGs in the dataset's ``imgs/`` layout
+ manifest, resumable); the annotation json and every other file of the dataset are untouched.

Evaluation (:func:`evaluate_t2i`) reads the stored PNGs back and ranks, with IRRA's protocol
(``utils/metrics.py`` ``rank``), every test caption against every gallery image:

- ``T2O``: text query, original gallery; ``T2P``: text query, protected gallery;
- similarity = cosine of L2-normalised text and image features; the ranking covers **all**
  gallery images, with no camera or junk removal (:func:`~torchreid_pixelfade.metrics.
  evaluate_rank` with ``protocol="none"`` on ``-similarity``);
- Rank-1/5/10 (CMC), mAP (mean precision at the hits) and mINP (hits / rank of the last hit),
  fractions in [0, 1] (IRRA prints them x100).

Privacy (SSIM, PSNR, AD) and the constraint are measured on the stored gallery PNGs only.
Negative control: ``shuffle_seed`` permutes the captions' pids with a seeded generator, which
takes retrieval to chance level. The features shared with the VI scenario (files, stored images
and originals, per-image privacy) come from :mod:`torchreid_pixelfade.evaluation.sides`.

Library functions here take plain values (splits, records, models, folders), never a config.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...evaluation import EvaluationResult, Setting
from ...evaluation.sides import Side, original_side, privacy_means, protected_side
from ...metrics import evaluate_rank
from ...models import AuthorizedModel, eval_mode
from ...store import ProtectedFolder, ProtectionIdentity, protect_records, protection_identity
from .datasets import CaptionQuery, T2IRecord, T2ISplit
from .tokenizers import CONTEXT_LENGTH, CaptionTokenizer

logger = logging.getLogger(__name__)

T2O = Setting("text", "original")
T2P = Setting("text", "protected")
#: The settings of T2I, in report order (text queries are never protected).
T2I_SETTINGS = (T2O, T2P)
#: Splits whose images form a gallery (training images are never protected here).
GALLERY_SPLITS = ("test", "val")
#: The ranks IRRA reports.
IRRA_RANKS = (1, 5, 10)
#: Camera id given to text queries: with ``protocol="none"`` nothing is removed whatever the
#: cameras, and with any camera rule a caption could never share a camera with an image.
TEXT_CAMID = -1

TextEncoder = Callable[[torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------ protection


def gallery_records(test_split: T2ISplit) -> list[T2IRecord]:
    """The images to protect: every gallery image of ``test_split``, in json order.

    Returns:
        Records with ``relpath`` relative to the dataset folder (``imgs/...``, the
        ``source_root`` of :func:`protect_gallery`) and camid 0.

    Raises:
        ValueError: for a split without images.
    """
    if not test_split.images:
        raise ValueError("the T2I split has no gallery images")
    return list(test_split.images)


def t2i_identity(protector, model: AuthorizedModel, height: int, width: int, dataset: str,
                 weights=None) -> ProtectionIdentity:
    """The identity of a T2I protection run (:func:`~torchreid_pixelfade.store.
    protection_identity`).

    Args:
        protector: the protector (any registered one).
        model: the authorised image model (the image encoder wrapped with its mean and std).
        height, width: the stored size (the image encoder's input size; IRRA 384x128).
        dataset: the dataset's name (``"cuhk_pedes"`` ...).
        weights: the weights file the encoder was loaded from; default: the wrapped encoder
            itself (its state dict is hashed).
    """
    return protection_identity(protector, model, model.model if weights is None else weights,
                               height, width, dataset)


def protect_gallery(protector, records: Sequence[T2IRecord], out_dir: str,
                    identity: ProtectionIdentity, source_root: str, **kwargs) -> ProtectedFolder:
    """:func:`~torchreid_pixelfade.store.protect_records` for gallery images only.

    Args:
        protector, out_dir, identity, **kwargs: as ``protect_records``.
        records: :func:`gallery_records` of the test (or val) split.
        source_root: the dataset folder (``TextImageData.dataset_dir``).

    Raises:
        ValueError: for no records, a training image (only the test/val gallery is protected),
            or as ``protect_records``.
    """
    if not records:
        raise ValueError("no gallery images to protect")
    other = [r.path for r in records if r.split not in GALLERY_SPLITS]
    if other:
        raise ValueError(f"{len(other)} records are not gallery images of a test or val split "
                         f"(first: {other[0]}); the T2I scenario protects the gallery only")
    return protect_records(protector, records, out_dir, identity, source_root, **kwargs)


# ------------------------------------------------------------------ text side


@torch.no_grad()
def text_features(text_encoder: TextEncoder, tokenizer: CaptionTokenizer,
                  captions: Sequence[str], batch_size: int = 128,
                  device: str | torch.device = "cpu",
                  context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """``(Q, D)`` L2-normalised float features (on CPU) of captions, ``batch_size`` at a time.

    Args:
        text_encoder: maps ``(B, L)`` int64 token ids to ``(B, D)`` features (a module is run in
            eval mode, its train/eval flags restored afterwards).
        tokenizer: packs captions into IRRA's layout (``tokenizer(texts, context_length)``).
        captions: the query captions, verbatim.
        batch_size, device: where and how many captions are encoded at once.
        context_length: token sequence length ``L`` (IRRA 77).

    Raises:
        ValueError: for no captions, or an encoder output that is not ``(B, D)``.
    """
    if not captions:
        raise ValueError("no captions to encode")
    chunks = []
    with (eval_mode(text_encoder) if isinstance(text_encoder, torch.nn.Module)
          else contextlib.nullcontext()):
        for start in range(0, len(captions), batch_size):
            tokens = tokenizer(list(captions[start:start + batch_size]), context_length)
            chunks.append(_encoded(text_encoder, tokens.to(device)).float().cpu())
    return F.normalize(torch.cat(chunks), dim=1)


def _encoded(text_encoder: TextEncoder, tokens: torch.Tensor) -> torch.Tensor:
    features = text_encoder(tokens)
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or \
            len(features) != len(tokens):
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise ValueError(f"the text encoder must map (B, L) tokens to (B, D) features; got "
                         f"{shape} for tokens of shape {tuple(tokens.shape)}")
    return features


def caption_pids(queries: Sequence[CaptionQuery]) -> np.ndarray:
    """``(Q,)`` int64 pids of the captions, in query order."""
    return np.array([q.pid for q in queries], np.int64)


def shuffled_pids(pids: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation of ``pids`` (the shuffled-captions negative control).

    Every caption keeps a pid of the gallery (the multiset is unchanged, so every query still
    has a match) but no longer the one it describes, so retrieval falls to chance level.
    """
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(pids), generator=generator).numpy()
    return np.asarray(pids)[order]


# ------------------------------------------------------------------ ranking


def report_ranks(max_rank: int) -> tuple[int, ...]:
    """The CMC ranks reported for a curve of ``max_rank``: IRRA's 1, 5, 10 up to ``max_rank``,
    and ``max_rank`` itself.

    Raises:
        ValueError: if ``max_rank < 1``.
    """
    if int(max_rank) != max_rank or max_rank < 1:
        raise ValueError(f"max_rank must be an integer >= 1, got {max_rank!r}")
    return tuple(sorted({k for k in IRRA_RANKS if k <= max_rank} | {int(max_rank)}))


def t2i_rank(text: torch.Tensor, images: torch.Tensor, text_pids: np.ndarray,
             image_pids: np.ndarray, max_rank: int = 10) -> dict:
    """IRRA's text-to-image ranking of L2-normalised features.

    Each caption ranks every image by cosine similarity (``text @ images.T``), with no camera
    or junk removal; CMC at the reported ranks, mAP and mINP over the captions.

    Args:
        text: ``(Q, D)`` L2-normalised caption features.
        images: ``(G, D)`` L2-normalised image features.
        text_pids, image_pids: ``(Q,)`` and ``(G,)`` int pids.
        max_rank: CMC length (ranks reported: :func:`report_ranks`).

    Returns:
        ``{"rank1", "rank5", "rank10", "mAP", "mINP"}`` fractions in [0, 1].

    Raises:
        ValueError: for feature dimensions that differ, or as ``evaluate_rank``.
    """
    if text.shape[1] != images.shape[1]:
        raise ValueError(f"text features have D={text.shape[1]} but image features "
                         f"D={images.shape[1]}; the two encoders must share one embedding")
    similarity = text.float() @ images.float().t()
    result = evaluate_rank(-similarity.numpy(), text_pids, image_pids,
                           np.full(len(text_pids), TEXT_CAMID), np.zeros(len(image_pids)),
                           max_rank=max_rank, protocol="none")
    return result.to_dict(ranks=report_ranks(max_rank))


def rank_t2i_settings(text: torch.Tensor, text_pids: np.ndarray, gallery: Side,
                      max_rank: int = 10) -> dict[str, dict]:
    """Every T2I setting whose gallery form ``gallery`` has (``T2O``, then ``T2P``).

    Returns:
        ``{setting name: t2i_rank(...)}``.
    """
    return {item.name: t2i_rank(text, gallery.features[item.gallery], text_pids, gallery.pids,
                                max_rank)
            for item in T2I_SETTINGS if item.gallery in gallery.features}


def evaluate_original(image_model: AuthorizedModel, text_encoder: TextEncoder,
                      tokenizer: CaptionTokenizer, test_split: T2ISplit, height: int,
                      width: int, batch_size: int = 128, device: str | torch.device = "cpu",
                      max_rank: int = 10, context_length: int = CONTEXT_LENGTH) -> dict:
    """``T2O`` only (no protection; what training evaluates): captions against the original
    gallery images read from the dataset at ``height x width``.

    Returns:
        ``{"T2O": {"rank1", ..., "mAP", "mINP"}}``.
    """
    gallery = original_side(image_model, gallery_records(test_split), height, width,
                            batch_size, device)
    text = text_features(text_encoder, tokenizer, [q.caption for q in test_split.queries],
                         batch_size, device, context_length)
    return rank_t2i_settings(text, caption_pids(test_split.queries), gallery, max_rank)


# ------------------------------------------------------------------ results


@dataclasses.dataclass
class T2IEvaluationResult(EvaluationResult):
    """:class:`~torchreid_pixelfade.evaluation.EvaluationResult` of the T2I scenario.

    The inherited fields keep their meaning: ``settings`` holds ``T2O`` and ``T2P`` with
    ``rank1, rank5, rank10, mAP, mINP`` fractions in [0, 1]; ``num_query`` counts the captions,
    ``num_gallery`` the gallery images (the protected side; ``privacy`` is their mean);
    ``model`` is the image model.

    Attributes:
        t2i_protocol: ``{"similarity": "cosine", "protocol": "none", "max_rank",
            "text_model", "context_length", "shuffle_seed"}`` (``shuffle_seed`` set for the
            shuffled-captions control, else None).
    """

    t2i_protocol: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> T2IEvaluationResult:
        """Reads a ``results.json`` dictionary written by :meth:`write`."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_markdown(self) -> str:
        """Protocol line, settings table, privacy and protection lines."""
        return "\n".join([_protocol_line(self), "", *_table(self.settings), "",
                          *_summary_lines(self)]) + "\n"


def _protocol_line(result: T2IEvaluationResult) -> str:
    line = (f"Text-to-image evaluation on {result.dataset}: {result.num_query} captions rank all "
            f"{result.num_gallery} gallery images by cosine similarity (no camera or junk "
            f"removal).")
    seed = result.t2i_protocol.get("shuffle_seed")
    if seed is not None:
        line += f" Negative control: caption pids shuffled (seed {seed})."
    return line


def _table(settings: dict) -> list[str]:
    keys = list(next(iter(settings.values()), {}))
    columns = [(f"Rank-{k[4:]}" if k.startswith("rank") else k, k) for k in keys]
    lines = ["| setting | " + " | ".join(c for c, _ in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name, row in settings.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * row[k]:.1f}" for _, k in columns)
                     + " |")
    return lines


def _summary_lines(result: EvaluationResult) -> list[str]:
    privacy, protection = result.privacy, result.protection
    met = protection.get("constraint_met_fraction")
    constraint = f", constraint met for {100 * met:.1f}% of images." if met is not None else "."
    return [(f"Privacy of the {result.num_gallery} stored gallery images (protected vs "
             f"original): SSIM {privacy['ssim']:.3f}, PSNR {privacy['psnr']:.2f} dB, "
             f"Anderson-Darling {privacy['ad']:.1f} (median {privacy['ad_median']:.1f})."),
            (f"Protection: {protection['name']}, {protection['steps']} steps, "
             f"{protection['seconds_per_image']:.3f} s per image{constraint}")]


def _encoder_name(text_encoder: TextEncoder) -> str:
    return getattr(text_encoder, "name", None) or type(text_encoder).__name__


def evaluate_t2i(image_model: AuthorizedModel, text_encoder: TextEncoder,
                 tokenizer: CaptionTokenizer, folder: ProtectedFolder | str,
                 test_split: T2ISplit, batch_size: int = 128,
                 device: str | torch.device = "cpu", max_rank: int = 10,
                 context_length: int = CONTEXT_LENGTH, shuffle_seed: int | None = None,
                 dataset: str | None = None) -> T2IEvaluationResult:
    """Evaluates a folder of protected gallery images against the original text queries.

    Every image number comes from files read from disk: gallery originals and protected PNGs
    through the folder, at its stored size; the captions are encoded as they are.

    Args:
        image_model: the authorised image model the folder was protected with.
        text_encoder: ``(B, L)`` int64 tokens -> ``(B, D)`` features (same ``D``).
        tokenizer: the tokenizer the text encoder was trained with.
        folder: the folder written by :func:`protect_gallery` (or its path).
        test_split: the split the folder was made from (``TextImageData.test``).
        batch_size, device: image loading, text encoding and feature extraction.
        max_rank: CMC length (reported ranks: 1, 5, 10 up to it, and itself).
        context_length: token sequence length.
        shuffle_seed: negative control: permute the captions' pids with this seed
            (:func:`shuffled_pids`); None (default) evaluates the true pairs.
        dataset: name in the result; default the folder identity's dataset.

    Returns:
        A :class:`T2IEvaluationResult` (``.write("results.json")`` writes ``results.md`` too).

    Raises:
        ValueError: if a gallery image is not stored in the folder, the feature dimensions
            differ, or the split has no images or captions.
    """
    folder = folder if isinstance(folder, ProtectedFolder) else ProtectedFolder.open(folder)
    records = gallery_records(test_split)
    gallery = protected_side(image_model, folder, records, batch_size, device,
                             what="gallery images")
    text = text_features(text_encoder, tokenizer, [q.caption for q in test_split.queries],
                         batch_size, device, context_length)
    pids = caption_pids(test_split.queries)
    if shuffle_seed is not None:
        pids = shuffled_pids(pids, shuffle_seed)
    settings = rank_t2i_settings(text, pids, gallery, max_rank)
    logger.info("%s: %s", folder.path, {k: round(v["rank1"], 4) for k, v in settings.items()})
    protocol = {"similarity": "cosine", "protocol": "none", "max_rank": int(max_rank),
                "text_model": _encoder_name(text_encoder), "context_length": int(context_length),
                "shuffle_seed": shuffle_seed}
    return T2IEvaluationResult(
        settings=settings, privacy=privacy_means(gallery.privacy), protection=folder.summary(),
        num_query=len(pids), num_gallery=len(records), model=image_model.name,
        dataset=dataset or folder.identity.dataset or folder.source_root, t2i_protocol=protocol)


__all__ = [
    "GALLERY_SPLITS",
    "T2I_SETTINGS",
    "T2O",
    "T2P",
    "T2IEvaluationResult",
    "caption_pids",
    "evaluate_original",
    "evaluate_t2i",
    "gallery_records",
    "protect_gallery",
    "rank_t2i_settings",
    "report_ranks",
    "shuffled_pids",
    "t2i_identity",
    "t2i_rank",
    "text_features",
]
