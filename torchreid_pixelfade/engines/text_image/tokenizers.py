"""Caption tokenizers with IRRA's token layout (engines.md sections 2.1 and 3).

Both tokenizers pack a caption the way IRRA's ``datasets/bases.py`` ``tokenize`` does::

    [sot, w_1, ..., w_n, eot, 0, 0, ..., 0]        (context_length ids, 77 by default)

and, when ``[sot] + words + [eot]`` is longer than ``context_length`` and ``truncate`` is set,
keep the first ``context_length`` ids and overwrite the last one with ``eot``, so every packed
sequence holds exactly one ``eot``. The special ids are the three largest of the vocabulary
(``mask = V - 3``, ``sot = V - 2``, ``eot = V - 1``), so a text encoder can pool the EOT position
with ``ids.argmax(-1)`` as CLIP and IRRA do; ordinary ids lie in ``[1, mask)``, the range IRRA's
MLM masks.

- :class:`ClipBPETokenizer`: CLIP's byte-level BPE with IRRA's vocabulary (CLIP's 49,408 entries
  with the last merge dropped and ``<|mask|>`` = 49405, ``<|startoftext|>`` = 49406,
  ``<|endoftext|>`` = 49407), so ids match IRRA checkpoints. Built from the merges file that the
  ``open_clip_torch`` package ships (``open_clip/bpe_simple_vocab_16e6.txt.gz``), located without
  importing ``open_clip`` and never downloaded; it needs the optional ``text`` extra
  (``pip install -e ".[text]"``: open_clip_torch, ftfy, regex). As in CLIP, id 0 is both the
  token ``!`` and the padding.
- :class:`WordTokenizer`: dependency-free, a word vocabulary counted from training captions
  (``pad = 0``, ``unk = 1``, words from 2, then mask, sot, eot), for the demo and the tests.
"""
from __future__ import annotations

import collections
import functools
import gzip
import html
import importlib.util
import itertools
import os
import re
from collections.abc import Iterable, Sequence

import torch

__all__ = [
    "CONTEXT_LENGTH",
    "TEXT_EXTRA_HINT",
    "CaptionTokenizer",
    "ClipBPETokenizer",
    "WordTokenizer",
    "pack_tokens",
    "clip_bpe_vocab_path",
    "clip_bpe_available",
    "build_tokenizer",
]

#: IRRA's text length (CLIP's context).
CONTEXT_LENGTH = 77
#: How to install what :class:`ClipBPETokenizer` needs.
TEXT_EXTRA_HINT = 'pip install -e ".[text]"  (open_clip_torch, ftfy, regex)'

_CLIP_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
# CLIP keeps the first 49152 - 256 - 2 merges of the file (line 0 is a version header).
_CLIP_NUM_MERGES = 49152 - 256 - 2
_MASK, _SOT, _EOT = "<|mask|>", "<|startoftext|>", "<|endoftext|>"
# IRRA's pre-tokenisation: specials, English contractions, letter runs, single digits, and runs of
# other non-space characters (``regex`` syntax: needs Unicode classes).
_CLIP_PATTERN = (r"<\|startoftext\|>|<\|mask\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"
                 r"[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")
_WORD_PATTERN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|[^\w\s]")
_ATTACHED_PUNCTUATION = re.compile(r" ([.,;:!?)])")


def pack_tokens(ids: Sequence[int], sot: int, eot: int, context_length: int = CONTEXT_LENGTH,
                truncate: bool = True, pad: int = 0) -> torch.Tensor:
    """Packs ordinary token ids into IRRA's fixed-length layout.

    Args:
        ids: Ordinary ids of one caption (no start/end token).
        sot: Start-of-text id, put first.
        eot: End-of-text id, put after the last kept id.
        context_length: Output length ``L`` (at least 2).
        truncate: Over-long captions keep their first ``L - 2`` ids and the ``eot`` (IRRA: keep
            ``L`` ids, then the last one becomes ``eot``); if False they raise.
        pad: Id filling the tail.

    Returns:
        ``(L,)`` int64 tensor ``[sot, ids..., eot, pad...]`` with exactly one ``eot``.

    Raises:
        ValueError: ``context_length < 2``, or the caption is too long and ``truncate`` is False.
    """
    if context_length < 2:
        raise ValueError(f"context_length must be >= 2, got {context_length}")
    tokens = [sot, *ids, eot]
    if len(tokens) > context_length:
        if not truncate:
            raise ValueError(f"caption of {len(ids)} tokens does not fit context_length "
                             f"{context_length} (with start and end tokens)")
        tokens = tokens[:context_length - 1] + [eot]
    packed = torch.full((context_length,), pad, dtype=torch.long)
    packed[:len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return packed


class CaptionTokenizer:
    """Shared packing and decoding; subclasses set the ids and ``encode``/``_decode_ids``.

    Attributes:
        vocab_size: Number of ids ``V``.
        pad_id: Padding id (0).
        mask_id: ``V - 3``, the MLM mask token.
        sot_id: ``V - 2``, start of text.
        eot_id: ``V - 1``, end of text (the largest id, so ``argmax`` finds it).
    """

    vocab_size: int
    pad_id: int = 0

    @property
    def mask_id(self) -> int:
        return self.vocab_size - 3

    @property
    def sot_id(self) -> int:
        return self.vocab_size - 2

    @property
    def eot_id(self) -> int:
        return self.vocab_size - 1

    @property
    def ordinary_range(self) -> tuple[int, int]:
        """Half-open ``[1, mask_id)``: the ids IRRA's MLM may mask (no pad or special)."""
        return 1, self.mask_id

    def encode(self, text: str) -> list[int]:
        """Ordinary ids of ``text`` (no start/end token)."""
        raise NotImplementedError

    def _decode_ids(self, ids: list[int]) -> str:
        raise NotImplementedError

    def tokenize(self, text: str, context_length: int = CONTEXT_LENGTH,
                 truncate: bool = True) -> torch.Tensor:
        """``(context_length,)`` int64 ids of one caption in IRRA's layout (:func:`pack_tokens`)."""
        return pack_tokens(self.encode(text), self.sot_id, self.eot_id, context_length,
                           truncate, self.pad_id)

    def __call__(self, texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH,
                 truncate: bool = True) -> torch.Tensor:
        """``(B, context_length)`` int64 ids of ``texts`` (``B = 1`` for one string)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return torch.zeros((0, context_length), dtype=torch.long)
        return torch.stack([self.tokenize(t, context_length, truncate) for t in texts])

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Text of ``ids``: a leading ``sot`` is dropped and everything from the first ``eot``
        on (the padding) is ignored; ``mask`` decodes as ``<|mask|>``."""
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        if ids and ids[0] == self.sot_id:
            ids = ids[1:]
        if self.eot_id in ids:
            ids = ids[:ids.index(self.eot_id)]
        return self._decode_ids(ids)


# --------------------------------------------------------------------------------------------------
# CLIP BPE (IRRA vocabulary)
# --------------------------------------------------------------------------------------------------
def clip_bpe_vocab_path() -> str:
    """Path of the CLIP merges file inside the installed ``open_clip_torch`` package.

    The package is located with :func:`importlib.util.find_spec`, which does not run its
    ``__init__`` (so neither timm nor huggingface_hub is imported, and nothing is downloaded).

    Raises:
        ImportError: ``open_clip_torch`` is not installed, or its package lacks the file.
    """
    spec = importlib.util.find_spec("open_clip")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = os.path.join(folder, _CLIP_VOCAB_FILE)
        if os.path.isfile(path):
            return path
    where = f"in {folders}" if folders else "(package open_clip not installed)"
    raise ImportError(f"The CLIP BPE vocabulary open_clip/{_CLIP_VOCAB_FILE} was not found "
                      f"{where}; install the text extra: {TEXT_EXTRA_HINT}")


def clip_bpe_available() -> bool:
    """Whether :class:`ClipBPETokenizer` can be built (vocabulary file, ftfy and regex)."""
    try:
        clip_bpe_vocab_path()
    except ImportError:
        return False
    return all(importlib.util.find_spec(name) is not None for name in ("ftfy", "regex"))


def _import_text_module(name: str):
    """Imports ``ftfy`` or ``regex``, or raises ImportError naming the text extra."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"ClipBPETokenizer needs {name!r}; install the text extra: "
                          f"{TEXT_EXTRA_HINT}") from error


@functools.lru_cache(maxsize=1)
def _byte_alphabet() -> dict[int, str]:
    """CLIP's reversible byte -> printable character map (256 entries), in vocabulary order.

    Bytes that are printable Latin-1 characters (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand
    for themselves and come first; the others follow in increasing byte order and get the
    characters 256, 257, ... (so ``a`` is id 64 and ``a</w>`` id 320).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    kept = set(printable)
    others = [b for b in range(256) if b not in kept]
    mapping = {b: chr(b) for b in printable}
    mapping.update({b: chr(256 + n) for n, b in enumerate(others)})
    return mapping


@functools.lru_cache(maxsize=4)
def _clip_tables(path: str) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """``(encoder, merge ranks)`` of IRRA's vocabulary from the merges file at ``path``.

    Vocabulary order: the 256 byte characters, the same with ``</w>``, one entry per merge, minus
    the last merge's entry (IRRA's ``vocab.pop(-1)``), then mask, sot, eot (49,408 ids). The last
    merge is also left out of the ranks, so its word is spelt with the two parts instead of
    failing on an id IRRA does not have: every other text gets IRRA's ids.
    """
    with gzip.open(path) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:_CLIP_NUM_MERGES + 1]]
    if len(merges) != _CLIP_NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{path} is not CLIP's merges file ({len(merges)} merges read)")
    alphabet = list(_byte_alphabet().values())
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges[:-1]]
    vocab += [_MASK, _SOT, _EOT]
    ranks = {merge: rank for rank, merge in enumerate(merges[:-1])}
    return {token: i for i, token in enumerate(vocab)}, ranks


class ClipBPETokenizer(CaptionTokenizer):
    """CLIP's BPE with IRRA's vocabulary: ``V = 49408``, mask 49405, sot 49406, eot 49407.

    Text is cleaned as CLIP does (``ftfy.fix_text``, HTML unescaping, whitespace collapsed,
    lower case), split with CLIP's pattern, byte-mapped and merged by rank. Ordinary ids equal
    CLIP's / open_clip's, so IRRA checkpoints can be used with it.

    Args:
        bpe_path: The merges file; default: the one ``open_clip_torch`` ships
            (:func:`clip_bpe_vocab_path`).

    Raises:
        ImportError: The ``text`` extra is missing (message says ``pip install -e ".[text]"``).
    """

    def __init__(self, bpe_path: str | os.PathLike | None = None) -> None:
        self._ftfy = _import_text_module("ftfy")
        regex = _import_text_module("regex")
        path = os.fspath(bpe_path) if bpe_path is not None else clip_bpe_vocab_path()
        self.bpe_path = path
        self.encoder, self._ranks = _clip_tables(path)
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.vocab_size = len(self.encoder)
        self._pattern = regex.compile(_CLIP_PATTERN, regex.IGNORECASE)
        self._bytes = _byte_alphabet()
        self._unbytes = {c: b for b, c in self._bytes.items()}
        self._cache = {_SOT: _SOT, _MASK: _MASK, _EOT: _EOT}

    def clean(self, text: str) -> str:
        """CLIP's text cleaning: ftfy, HTML unescaped twice, whitespace collapsed, lower case."""
        text = html.unescape(html.unescape(self._ftfy.fix_text(text))).strip()
        return re.sub(r"\s+", " ", text).strip().lower()

    def _bpe(self, token: str) -> list[str]:
        """Merges one byte-mapped pre-token into vocabulary entries (cached)."""
        if token in self._cache:
            return self._cache[token].split(" ")
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = set(itertools.pairwise(word))
            best = min(pairs, key=lambda pair: self._ranks.get(pair, float("inf")))
            if best not in self._ranks:
                break
            word = self._merge(word, best)
        self._cache[token] = " ".join(word)
        return word

    @staticmethod
    def _merge(word: list[str], pair: tuple[str, str]) -> list[str]:
        """``word`` with every non-overlapping occurrence of ``pair`` joined, left to right."""
        merged, i = [], 0
        while i < len(word):
            if i < len(word) - 1 and (word[i], word[i + 1]) == pair:
                merged.append(word[i] + word[i + 1])
                i += 2
            else:
                merged.append(word[i])
                i += 1
        return merged

    def encode(self, text: str) -> list[int]:
        """Ordinary ids of ``text`` (``<|mask|>`` written in the text becomes the mask id)."""
        ids = []
        for piece in self._pattern.findall(self.clean(text)):
            mapped = "".join(self._bytes[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[entry] for entry in self._bpe(mapped))
        return ids

    def _decode_ids(self, ids: list[int]) -> str:
        # Every vocabulary character is a byte's stand-in (the specials and "</w>" are ASCII).
        text = "".join(self.decoder[i] for i in ids)
        raw = bytearray(self._unbytes[c] for c in text).decode("utf-8", errors="replace")
        return raw.replace("</w>", " ").strip()


# --------------------------------------------------------------------------------------------------
# Word tokenizer
# --------------------------------------------------------------------------------------------------
class WordTokenizer(CaptionTokenizer):
    """A word-level tokenizer built from training captions (no dependency, no download).

    Text is lower-cased and split into words (letters/digits, inner apostrophes and hyphens kept:
    ``t-shirt``, ``man's``) and single punctuation marks. Ids: ``pad = 0``, ``unk = 1``, the
    words ``2 .. V - 4`` (most frequent first, ties alphabetical), then ``mask = V - 3``,
    ``sot = V - 2``, ``eot = V - 1``.

    Args:
        words: The vocabulary words in id order (distinct; no special strings).
    """

    UNK = "<unk>"
    PAD = "<pad>"
    unk_id = 1

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        specials = {self.PAD, self.UNK, _MASK, _SOT, _EOT}
        if len(set(words)) != len(words) or specials & set(words):
            raise ValueError("vocabulary words must be distinct and not special tokens")
        self.words = tuple(words)
        self._itos = [self.PAD, self.UNK, *words, _MASK, _SOT, _EOT]
        self._stoi = {word: i for i, word in enumerate(self._itos)}
        self.vocab_size = len(self._itos)

    @staticmethod
    def split(text: str) -> list[str]:
        """Lower-cased words and punctuation marks of ``text``."""
        return _WORD_PATTERN.findall(text.lower())

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1,
              max_words: int | None = None) -> WordTokenizer:
        """Counts the words of ``captions`` into a vocabulary.

        Args:
            captions: Training captions.
            min_count: Words seen fewer times become ``<unk>``.
            max_words: Keep at most this many words (the most frequent).
        """
        counts = collections.Counter(w for caption in captions for w in cls.split(caption))
        ranked = sorted((w for w, n in counts.items() if n >= min_count),
                        key=lambda w: (-counts[w], w))
        return cls(ranked[:max_words] if max_words is not None else ranked)

    def to_dict(self) -> dict:
        """JSON-able state (store it beside a checkpoint)."""
        return {"type": "word", "words": list(self.words)}

    @classmethod
    def from_dict(cls, state: dict) -> WordTokenizer:
        """The tokenizer of :meth:`to_dict`'s output."""
        if state.get("type") != "word":
            raise ValueError(f"not a WordTokenizer state: type {state.get('type')!r}")
        return cls(state["words"])

    def encode(self, text: str) -> list[int]:
        """Ordinary ids of ``text``: known words, else ``unk``."""
        return [self._stoi.get(word, self.unk_id) for word in self.split(text)]

    def _decode_ids(self, ids: list[int]) -> str:
        words = [self._itos[i] for i in ids if i != self.pad_id]
        return _ATTACHED_PUNCTUATION.sub(r"\1", " ".join(words))


def build_tokenizer(kind: str, captions: Iterable[str] | None = None) -> CaptionTokenizer:
    """``"clip_bpe"`` -> :class:`ClipBPETokenizer`; ``"word"`` -> :class:`WordTokenizer` built
    from ``captions`` (required)."""
    if kind == "clip_bpe":
        return ClipBPETokenizer()
    if kind == "word":
        if captions is None:
            raise ValueError("a word tokenizer is built from training captions; pass captions")
        return WordTokenizer.build(captions)
    raise ValueError(f"tokenizer kind must be 'clip_bpe' or 'word', got {kind!r}")
