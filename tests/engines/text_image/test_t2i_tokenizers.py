"""Tests of IRRA's token layout, the word tokenizer and (with the ``text`` extra) CLIP's BPE."""
from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from torchreid_pixelfade.engines.text_image.tokenizers import (
    ClipBPETokenizer,
    WordTokenizer,
    build_tokenizer,
    clip_bpe_available,
    clip_bpe_vocab_path,
    pack_tokens,
)

CAPTIONS = [
    "A woman wearing a red T-shirt, blue jeans and white shoes.",
    "The man has short black hair and carries a grey backpack.",
    "A person in a green jacket with horizontal white stripes, with long brown hair.",
]
needs_bpe = pytest.mark.skipif(not clip_bpe_available(),
                               reason='CLIP BPE needs the text extra: pip install -e ".[text]"')


def _eot_checks(ids: torch.Tensor, tokenizer) -> None:
    """IRRA's layout: sot first, exactly one eot, which is the argmax, zeros after it."""
    assert ids.dtype == torch.long and ids[0] == tokenizer.sot_id
    eot = int(ids.argmax())
    assert ids[eot] == tokenizer.eot_id and int((ids == tokenizer.eot_id).sum()) == 1
    assert torch.all(ids[eot + 1:] == tokenizer.pad_id)


# --------------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------------
def test_pack_tokens_layout_and_truncation_keeps_eot() -> None:
    assert pack_tokens([5, 6], sot=8, eot=9, context_length=6).tolist() == [8, 5, 6, 9, 0, 0]
    assert pack_tokens([5, 6, 7, 4], sot=8, eot=9, context_length=6).tolist() == [
        8, 5, 6, 7, 4, 9]  # exactly fits
    assert pack_tokens(list(range(1, 8)), sot=8, eot=9, context_length=6).tolist() == [
        8, 1, 2, 3, 4, 9]  # IRRA: keep L ids, last becomes eot
    assert pack_tokens([], sot=8, eot=9, context_length=3).tolist() == [8, 9, 0]
    with pytest.raises(ValueError, match="does not fit"):
        pack_tokens(list(range(1, 8)), sot=8, eot=9, context_length=6, truncate=False)
    with pytest.raises(ValueError, match="context_length"):
        pack_tokens([1], sot=8, eot=9, context_length=1)


# --------------------------------------------------------------------------------------------------
# Word tokenizer
# --------------------------------------------------------------------------------------------------
def test_word_vocabulary_ids_and_special_layout() -> None:
    tokenizer = WordTokenizer.build(CAPTIONS)
    v = tokenizer.vocab_size
    assert (tokenizer.pad_id, tokenizer.unk_id) == (0, 1)
    assert (tokenizer.mask_id, tokenizer.sot_id, tokenizer.eot_id) == (v - 3, v - 2, v - 1)
    assert tokenizer.ordinary_range == (1, v - 3)
    assert tokenizer.words[:2] == ("a", ".")  # most frequent first ("a" 5 times, "." 3 times)
    assert len(tokenizer.words) == v - 5
    ids = tokenizer.encode("A red T-shirt")
    assert ids == [tokenizer.words.index(w) + 2 for w in ("a", "red", "t-shirt")]
    assert tokenizer.encode("A purple hat") == [2, 1, 1]  # unknown words -> unk
    assert WordTokenizer.build(CAPTIONS, min_count=2).words == ("a", ".", ",", "and", "hair",
                                                                "white", "with")
    assert WordTokenizer.build(CAPTIONS, max_words=3).words == ("a", ".", ",")


def test_word_round_trip_and_eot_rule() -> None:
    tokenizer = build_tokenizer("word", CAPTIONS)
    for caption in CAPTIONS:
        ids = tokenizer.tokenize(caption)
        assert ids.shape == (77,)
        _eot_checks(ids, tokenizer)
        assert WordTokenizer.split(tokenizer.decode(ids)) == WordTokenizer.split(caption)
        assert tokenizer.decode(ids) == caption.lower()
    batch = tokenizer(CAPTIONS, context_length=8)
    assert batch.shape == (3, 8)
    for row, caption in zip(batch, CAPTIONS):
        _eot_checks(row, tokenizer)
        assert row[-1] == tokenizer.eot_id  # truncated, eot kept last
        assert row[1:-1].tolist() == tokenizer.encode(caption)[:6]
    assert tokenizer([]).shape == (0, 77)


def test_word_state_round_trip() -> None:
    tokenizer = WordTokenizer.build(CAPTIONS)
    clone = WordTokenizer.from_dict(tokenizer.to_dict())
    assert torch.equal(clone(CAPTIONS), tokenizer(CAPTIONS))
    with pytest.raises(ValueError, match="distinct"):
        WordTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="special"):
        WordTokenizer(["<|endoftext|>"])
    with pytest.raises(ValueError, match="captions"):
        build_tokenizer("word")


# --------------------------------------------------------------------------------------------------
# CLIP BPE with IRRA's vocabulary
# --------------------------------------------------------------------------------------------------
def test_missing_text_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "open_clip" else real(name, *a))
    with pytest.raises(ImportError, match=r'pip install -e "\.\[text\]"'):
        clip_bpe_vocab_path()
    with pytest.raises(ImportError, match=r'pip install -e "\.\[text\]"'):
        ClipBPETokenizer()
    assert not clip_bpe_available()


@pytest.fixture(scope="module")
def bpe() -> ClipBPETokenizer:
    return ClipBPETokenizer()


@needs_bpe
def test_bpe_irra_special_ids_and_known_ids(bpe: ClipBPETokenizer) -> None:
    assert bpe.vocab_size == 49408
    assert (bpe.mask_id, bpe.sot_id, bpe.eot_id) == (49405, 49406, 49407)
    assert bpe.encoder["<|mask|>"] == 49405 and bpe.ordinary_range == (1, 49405)
    assert bpe.encode("a diagram") == [320, 22697]  # CLIP's ids ("a</w>" = 256 + 64)
    assert bpe.encode("<|mask|>") == [49405]
    # IRRA drops the last merge's entry ("jekyll</w>"): spelt with its two parts, not an error
    assert "jekyll</w>" not in bpe.encoder and bpe.decode(bpe.encode("jekyll")) == "jekyll"


@needs_bpe
def test_bpe_round_trip_and_eot_rule(bpe: ClipBPETokenizer) -> None:
    for caption in CAPTIONS + ["It's 2024: café & naïve!"]:
        ids = bpe.tokenize(caption)
        _eot_checks(ids, bpe)
        assert bpe.decode(ids).split() == bpe.decode(bpe.encode(caption)).split()
        assert bpe.decode(ids).replace(" ", "") == bpe.clean(caption).replace(" ", "")
    long = bpe.tokenize("stripes " * 100)
    assert long[-1] == bpe.eot_id and int((long == bpe.eot_id).sum()) == 1
    assert long[1:-1].tolist() == bpe.encode("stripes " * 100)[:75]


@needs_bpe
def test_bpe_ordinary_ids_match_open_clip(bpe: ClipBPETokenizer) -> None:
    """open_clip's own tokenizer module (loaded alone: no timm import) gives the same ids."""
    path = os.path.join(os.path.dirname(clip_bpe_vocab_path()), "tokenizer.py")
    spec = importlib.util.spec_from_file_location("_open_clip_tokenizer_ref", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        reference = module.SimpleTokenizer()
    except (ImportError, AttributeError, OSError) as error:  # another open_clip version
        pytest.skip(f"open_clip's tokenizer module cannot be loaded alone: {error}")
    for caption in CAPTIONS + ["It's 2024: café & naïve! &amp; “quoted”"]:
        assert bpe.encode(caption) == reference.encode(caption)
