"""Text-to-image (T2I) Re-ID engine: CUHK-PEDES, ICFG-PEDES, RSTPReid; text queries against
protected image galleries.

- :mod:`.datasets`: pure readers with IRRA's semantics (one training row per caption, training
  pids checked to be ``0 .. P-1``; test queries = every caption, gallery = every image) and their
  torchreid datasets for the image side (:func:`~.datasets.register_t2i_datasets`; nothing is
  registered at import).
- :mod:`.tokenizers`: IRRA's token layout (sot, words, eot, zero padding to 77, truncation keeps
  the eot; mask/sot/eot the three largest ids) with CLIP's BPE (optional ``text`` extra) or a
  dependency-free word vocabulary.

Not built yet: the dual encoder, the SDM/ID/MLM losses, t2i evaluation, the torchreid ``Engine``
subclass and the workflows.
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
]
