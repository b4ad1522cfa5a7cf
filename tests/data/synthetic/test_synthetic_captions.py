"""Tests of the attribute captions of synthetic persons."""
from __future__ import annotations

import re

import numpy as np
import pytest

from torchreid_pixelfade.data.synthetic.appearance import identity_rng, sample_identity
from torchreid_pixelfade.data.synthetic.captions import (
    ATTRIBUTES,
    COLOUR_NAMES,
    HAIR_COLOUR_NAMES,
    caption_rng,
    colour_name,
    compose_caption,
    hair_colour_name,
    make_captions,
    person_facts,
    processed_tokens,
)

PERSONS = [sample_identity(pid, identity_rng(0, pid)) for pid in range(1, 41)]
WORDS = re.compile(r"[a-z]+")


@pytest.mark.parametrize("rgb, name", [
    ((10, 10, 10), "black"), ((240, 240, 240), "white"), ((128, 128, 128), "grey"),
    ((220, 30, 30), "red"), ((240, 140, 20), "orange"), ((230, 220, 30), "yellow"),
    ((30, 180, 40), "green"), ((30, 60, 200), "blue"), ((130, 40, 200), "purple"),
    ((240, 100, 200), "pink"), ((110, 60, 20), "brown"), ((200, 180, 130), "beige"),
])
def test_colour_bins(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(rgb) == name


def test_hair_colours_of_the_reference_tones() -> None:
    names = [hair_colour_name(rgb) for rgb in [(20, 17, 15), (85, 55, 35), (210, 175, 110),
                                               (150, 150, 150), (120, 45, 25)]]
    assert names == ["black", "brown", "blond", "grey", "red"]


def test_facts_follow_the_sampled_attributes() -> None:
    for person in PERSONS:
        facts = person_facts(person)
        assert facts.hair_length == ("long" if person.long_hair else "short")
        assert facts.bottom == ("shorts" if person.shorts else "trousers")
        assert facts.top_colour == colour_name(person.top) and facts.top_colour in COLOUR_NAMES
        assert facts.hair_colour in HAIR_COLOUR_NAMES
        assert facts.bag == person.bag and (facts.bag_colour == "") == (person.bag == "none")
        assert facts.pattern == person.pattern


def _check_caption(caption: str, mentioned: tuple[str, ...], facts) -> None:
    words = set(WORDS.findall(caption.lower()))
    # every colour word is true of the person (no invented colour)
    assert words & set(COLOUR_NAMES) <= facts.colours(), caption
    assert caption[0].isupper() and caption.endswith(".")
    assert any(g in mentioned for g in ("top", "bottom", "shoes"))
    if "top" in mentioned:
        assert facts.top_colour in words
        assert ("stripes" in words) == (facts.pattern in ("hstripes", "vstripes"))
        text = caption.lower()
        if re.search(r"long-sleeved|long sleeves", text):
            assert facts.long_sleeves, caption
        if re.search(r"short-sleeved|short sleeves|t-shirt", text):
            assert not facts.long_sleeves, caption
    if "bottom" in mentioned:
        assert facts.bottom_colour in words
        assert ("shorts" in words) == (facts.bottom == "shorts")
    if "hair" in mentioned:
        assert f"{facts.hair_length} {facts.hair_colour} hair" in caption
    if "shoes" in mentioned:
        assert facts.shoes_colour in words
    if "bag" in mentioned:
        assert facts.bag != "none" and facts.bag_colour in words
    else:
        assert not words & {"backpack", "rucksack", "bag", "satchel"}
    if "build" in mentioned:
        assert facts.build in words


def test_captions_mention_true_attributes() -> None:
    seen: set[str] = set()
    for person in PERSONS:
        facts = person_facts(person)
        rng = caption_rng(0, person.pid, 0)
        for _ in range(10):
            caption, mentioned = compose_caption(facts, rng)
            _check_caption(caption, mentioned, facts)
            seen.update(mentioned)
            # 1 or 2 of the describable attributes are dropped
            describable = 4 + (facts.bag != "none") + bool(facts.build)
            assert describable - 2 <= len(mentioned) <= describable - 1
    assert seen == set(ATTRIBUTES)


def test_captions_are_seeded_varied_and_distinct() -> None:
    person = PERSONS[0]
    first = make_captions(person, caption_rng(0, person.pid, 0), count=3)
    assert first == make_captions(person, caption_rng(0, person.pid, 0), count=3)
    assert len(set(first)) == 3
    other = make_captions(person, caption_rng(0, person.pid, 1), count=3)
    assert other != first
    many = {c for k in range(30) for c in make_captions(person, caption_rng(0, person.pid, k))}
    assert len(many) > 40  # templates, synonyms, order and drops vary
    with pytest.raises(ValueError, match="count"):
        make_captions(person, np.random.default_rng(0), count=0)


def test_processed_tokens_rule() -> None:
    assert processed_tokens("A man, in a long-sleeved T-shirt.") == [
        "a", "man", "in", "a", "longsleeved", "tshirt"]
