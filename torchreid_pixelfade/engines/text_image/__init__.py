"""Text-to-image (T2I) Re-ID engine: CUHK-PEDES, ICFG-PEDES, RSTPReid; text queries against
protected image galleries.

- :mod:`.datasets`: pure readers with IRRA's semantics (one training row per caption, training
  pids checked to be ``0 .. P-1``; test queries = every caption, gallery = every image) and their
  torchreid datasets for the image side (:func:`~.datasets.register_t2i_datasets`; nothing is
  registered at import).
- :mod:`.tokenizers`: IRRA's token layout (sot, words, eot, zero padding to 77, truncation keeps
  the eot; mask/sot/eot the three largest ids) with CLIP's BPE (optional ``text`` extra) or a
  dependency-free word vocabulary.

- :mod:`.model`: IRRA's dual encoder with its checkpoint names (``irra_vit_b16``), a tiny ViT
  and ``<torchreid model>_text`` CPU presets; the image encoder's un-normalised feature is the
  authorised model of protection.
- :mod:`.losses`: SDM, ID and MLM (IRRA) and ITC; caption masking.
- :mod:`.engine`: the torchreid ``Engine`` subclass, IRRA's optimiser and schedule.
- :mod:`.task`: gallery protection and T2O/T2P evaluation from the stored PNGs.
"""
from __future__ import annotations

from .datasets import (
    CaptionQuery,
    CaptionRow,
    T2IRecord,
    T2ISplit,
    TextImageData,
    read_cuhk_pedes,
    read_icfg_pedes,
    read_rstpreid,
    read_t2i_dataset,
    register_t2i_datasets,
)
from .engine import T2IEngine, build_t2i_datamanager, build_t2i_engine
from .model import CLIP_MEAN, CLIP_STD, DualEncoder, build_t2i_model, image_encoder, text_encoder
from .task import (T2I_SETTINGS, T2IEvaluationResult, evaluate_original, evaluate_t2i,
                   gallery_records, protect_gallery, shuffled_pids, t2i_identity, t2i_rank,
                   text_features)
from .tokenizers import ClipBPETokenizer, WordTokenizer, build_tokenizer, pack_tokens

__all__ = [
    "T2IRecord",
    "CaptionRow",
    "CaptionQuery",
    "T2ISplit",
    "TextImageData",
    "read_t2i_dataset",
    "read_cuhk_pedes",
    "read_icfg_pedes",
    "read_rstpreid",
    "register_t2i_datasets",
    "ClipBPETokenizer",
    "WordTokenizer",
    "build_tokenizer",
    "pack_tokens",
    "CLIP_MEAN",
    "CLIP_STD",
    "DualEncoder",
    "build_t2i_model",
    "image_encoder",
    "text_encoder",
    "T2IEngine",
    "build_t2i_datamanager",
    "build_t2i_engine",
    "T2I_SETTINGS",
    "T2IEvaluationResult",
    "evaluate_original",
    "evaluate_t2i",
    "gallery_records",
    "protect_gallery",
    "shuffled_pids",
    "t2i_identity",
    "t2i_rank",
    "text_features",
]
