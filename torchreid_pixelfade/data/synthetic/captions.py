"""Captions of synthetic persons, written from their known attributes (engines.md section 5.1).

:func:`person_facts` names what :func:`~.appearance.sample_identity` drew: colours by HSV bins
(black / white / grey by value and saturation; red, orange, yellow, green, blue, purple, pink,
brown, beige by hue), hair length and colour, top colour with sleeve length and pattern (with its
second colour), trousers or shorts, shoes, bag and build. :func:`compose_caption` turns the facts
into one sentence or two with a random template, random synonyms and word order, and 1 or 2
attributes dropped (never every garment), so captions describe the person truthfully but
ambiguously, as annotators do. :func:`make_captions` gives several distinct captions of one
image; every choice comes from a seeded stream (:func:`caption_rng`).
"""
from __future__ import annotations

import colorsys
import dataclasses
import string

import numpy as np

from .appearance import RGB, PersonIdentity

__all__ = [
    "COLOUR_NAMES",
    "HAIR_COLOUR_NAMES",
    "ATTRIBUTES",
    "PersonFacts",
    "colour_name",
    "hair_colour_name",
    "person_facts",
    "compose_caption",
    "make_caption",
    "make_captions",
    "caption_rng",
    "processed_tokens",
]

#: Every clothing colour word :func:`colour_name` returns.
COLOUR_NAMES = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple",
                "pink", "brown", "beige")
#: Every hair colour word :func:`hair_colour_name` returns.
HAIR_COLOUR_NAMES = ("black", "brown", "blond", "grey", "red")
#: Attribute names a caption may mention (keys of the ``mentioned`` tuple).
ATTRIBUTES = ("build", "hair", "top", "bottom", "shoes", "bag")
_GARMENTS = ("top", "bottom", "shoes")
# Stream tag of caption choices (appearance.py uses 1..5, thermal.py 101..102, sysu_regdb 111..).
_TAG_CAPTION = 131

# Hue bins (upper bounds, hue in [0, 1)) of saturated colours.
_HUE_BINS = ((0.04, "red"), (0.10, "orange"), (0.18, "yellow"), (0.45, "green"), (0.71, "blue"),
             (0.83, "purple"), (0.95, "pink"), (1.01, "red"))

_SUBJECTS = ("a person", "the person", "this person", "a pedestrian", "the pedestrian",
             "this pedestrian", "an individual", "someone")
_LATER_SUBJECTS = ("the person", "this person", "the pedestrian", "this pedestrian")
_WEAR_VERBS = ("is wearing", "wears", "is dressed in", "has on")
_CARRY_VERBS = ("carries", "is carrying", "has")
_TOP_LONG = ("shirt", "top", "jacket", "sweater", "long-sleeved shirt", "long-sleeved top")
_TOP_SHORT = ("t-shirt", "short-sleeved shirt", "short-sleeved top", "top")
_TROUSERS = ("trousers", "pants", "slacks")
_SHOES = ("shoes", "sneakers", "footwear")


@dataclasses.dataclass(frozen=True)
class PersonFacts:
    """The describable attributes of one synthetic person (words, not pixels).

    Attributes:
        hair_length: ``"long"`` or ``"short"``.
        hair_colour: One of :data:`HAIR_COLOUR_NAMES`.
        top_colour: One of :data:`COLOUR_NAMES`.
        long_sleeves: Long sleeves (else short).
        pattern: ``"plain"``, ``"hstripes"``, ``"vstripes"`` or ``"checks"``.
        pattern_colour: Colour word of the pattern (``""`` for plain or when it reads as the top
            colour).
        bottom: ``"trousers"`` or ``"shorts"``.
        bottom_colour: Colour word of the trousers / shorts.
        shoes_colour: Colour word of the shoes.
        bag: ``"none"``, ``"backpack"`` or ``"shoulder"``.
        bag_colour: Colour word of the bag (``""`` without a bag).
        build: ``"slim"``, ``"broad"`` or ``""`` (average), from the body width.
    """

    hair_length: str
    hair_colour: str
    top_colour: str
    long_sleeves: bool
    pattern: str
    pattern_colour: str
    bottom: str
    bottom_colour: str
    shoes_colour: str
    bag: str
    bag_colour: str
    build: str

    def colours(self) -> set[str]:
        """Every colour word that is true of the person."""
        words = {self.hair_colour, self.top_colour, self.pattern_colour, self.bottom_colour,
                 self.shoes_colour, self.bag_colour}
        return words - {""}


# --------------------------------------------------------------------------------------------------
# Naming
# --------------------------------------------------------------------------------------------------
def _hsv(rgb: RGB) -> tuple[float, float, float]:
    """``(hue, saturation, value)`` in ``[0, 1]`` of an RGB colour with channels 0..255."""
    return colorsys.rgb_to_hsv(*(min(max(c, 0), 255) / 255 for c in rgb))


def colour_name(rgb: RGB) -> str:
    """The basic colour word of a clothing colour (one of :data:`COLOUR_NAMES`).

    Args:
        rgb: ``(r, g, b)``, channels in 0..255.
    """
    hue, saturation, value = _hsv(rgb)
    if value < 0.22:
        return "black"
    if saturation < 0.2:
        return "white" if value > 0.8 else "grey"
    if 0.04 <= hue < 0.17 and saturation < 0.55 and value >= 0.5:
        return "beige"
    if 0.02 <= hue < 0.1 and value < 0.55:
        return "brown"
    if 0.83 <= hue < 0.95 or (hue >= 0.95 and saturation < 0.5):
        return "pink"
    return next(name for bound, name in _HUE_BINS if hue < bound)


def hair_colour_name(rgb: RGB) -> str:
    """The hair colour word (one of :data:`HAIR_COLOUR_NAMES`) of an RGB hair colour."""
    hue, saturation, value = _hsv(rgb)
    if value < 0.25:
        return "black"
    if saturation < 0.2:
        return "grey"
    if value > 0.72:
        return "blond"
    if hue < 0.05 and saturation > 0.7:
        return "red"
    return "brown"


def _build(body_width: float) -> str:
    """``"slim"`` / ``"broad"`` / ``""`` for a body-width factor (about 0.85 .. 1.2)."""
    if body_width < 0.93:
        return "slim"
    if body_width > 1.12:
        return "broad"
    return ""


def person_facts(identity: PersonIdentity) -> PersonFacts:
    """Names the attributes of ``identity`` (colours by :func:`colour_name`)."""
    top = colour_name(identity.top)
    pattern_colour = ""
    if identity.pattern != "plain":
        pattern_colour = colour_name(identity.pattern_colour)
        pattern_colour = "" if pattern_colour == top else pattern_colour
    return PersonFacts(
        hair_length="long" if identity.long_hair else "short",
        hair_colour=hair_colour_name(identity.hair),
        top_colour=top,
        long_sleeves=identity.long_sleeves,
        pattern=identity.pattern,
        pattern_colour=pattern_colour,
        bottom="shorts" if identity.shorts else "trousers",
        bottom_colour=colour_name(identity.trousers),
        shoes_colour=colour_name(identity.shoes),
        bag=identity.bag,
        bag_colour=colour_name(identity.bag_colour) if identity.bag != "none" else "",
        build=_build(identity.body_width),
    )


# --------------------------------------------------------------------------------------------------
# Phrases
# --------------------------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    """``"a "`` or ``"an "`` + ``phrase``."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _pattern_phrase(facts: PersonFacts, rng: np.random.Generator) -> str:
    """`` with horizontal white stripes`` etc.; empty for a plain top."""
    second = f"{facts.pattern_colour} " if facts.pattern_colour else ""
    if facts.pattern == "hstripes":
        return f" with horizontal {second}stripes"
    if facts.pattern == "vstripes":
        return f" with vertical {second}stripes"
    if facts.pattern == "checks":
        return f" with a {second}{_pick(rng, ('checked', 'plaid', 'checkered'))} pattern"
    return ""


def _top_phrase(facts: PersonFacts, rng: np.random.Generator) -> str:
    garment = _pick(rng, _TOP_LONG if facts.long_sleeves else _TOP_SHORT)
    if "sleeved" not in garment and garment != "t-shirt" and rng.random() < 0.5:
        sleeves = "long" if facts.long_sleeves else "short"
        return (_article(f"{facts.top_colour} {garment}") + f" with {sleeves} sleeves"
                + _pattern_phrase(facts, rng).replace(" with ", " and ", 1))
    return _article(f"{facts.top_colour} {garment}") + _pattern_phrase(facts, rng)


def _bottom_phrase(facts: PersonFacts, rng: np.random.Generator) -> str:
    if facts.bottom == "shorts":
        return f"{facts.bottom_colour} shorts"
    return f"{facts.bottom_colour} {_pick(rng, _TROUSERS)}"


def _bag_phrase(facts: PersonFacts, rng: np.random.Generator) -> str:
    if facts.bag == "backpack":
        return _article(f"{facts.bag_colour} {_pick(rng, ('backpack', 'rucksack'))}")
    return _article(f"{facts.bag_colour} {_pick(rng, ('shoulder bag', 'bag', 'satchel'))}")


def _phrases(facts: PersonFacts, rng: np.random.Generator) -> dict[str, str]:
    """One phrase per describable attribute (``build`` only when not average, ``bag`` only
    when carried)."""
    phrases = {
        "hair": f"{facts.hair_length} {facts.hair_colour} hair",
        "top": _top_phrase(facts, rng),
        "bottom": _bottom_phrase(facts, rng),
        "shoes": f"{facts.shoes_colour} {_pick(rng, _SHOES)}",
    }
    if facts.bag != "none":
        phrases["bag"] = _bag_phrase(facts, rng)
    if facts.build:
        phrases["build"] = facts.build
    return phrases


def _drop(phrases: dict[str, str], rng: np.random.Generator) -> dict[str, str]:
    """``phrases`` without 1 or 2 random attributes, keeping at least one garment."""
    names = list(phrases)
    count = min(int(rng.integers(1, 3)), len(names) - 1)
    dropped = {names[int(i)] for i in rng.choice(len(names), size=count, replace=False)}
    if not any(g in phrases and g not in dropped for g in _GARMENTS):
        dropped.discard(_GARMENTS[int(rng.integers(len(_GARMENTS)))])
    return {k: v for k, v in phrases.items() if k not in dropped}


def _join(items: list[str]) -> str:
    """``"a, b and c"``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------------
def _subject(kept: dict[str, str], rng: np.random.Generator) -> str:
    """The first subject, with the build when it is mentioned (``"a slim pedestrian"``)."""
    subject = _pick(rng, _SUBJECTS)
    if "build" not in kept:
        return subject
    if " " not in subject:
        return f"a {kept['build']} person"
    article, noun = subject.split(" ", 1)
    return f"{'a' if article == 'an' else article} {kept['build']} {noun}"


def _template_two_sentences(kept: dict[str, str], rng: np.random.Generator) -> str:
    """``<Subject> wears <garments>. <Subject> has <hair> and carries <bag>.``"""
    garments = [kept[g] for g in _GARMENTS if g in kept]
    rng.shuffle(garments)
    first = f"{_subject(kept, rng)} {_pick(rng, _WEAR_VERBS)} {_join(garments)}."
    extras = []
    if "hair" in kept:
        extras.append(f"has {kept['hair']}")
    if "bag" in kept:
        extras.append(f"{_pick(rng, _CARRY_VERBS)} {kept['bag']}")
    if not extras:
        return first
    if rng.random() < 0.5:
        extras.reverse()
    return f"{first} {_pick(rng, _LATER_SUBJECTS)} {_join(extras)}."


def _template_with(kept: dict[str, str], rng: np.random.Generator) -> str:
    """``<Subject> with <hair> <wears> <garments>, carrying <bag>.``"""
    garments = [kept[g] for g in _GARMENTS if g in kept]
    rng.shuffle(garments)
    hair = f" with {kept['hair']}" if "hair" in kept else ""
    sentence = f"{_subject(kept, rng)}{hair} {_pick(rng, _WEAR_VERBS)} {_join(garments)}"
    if "bag" in kept:
        sentence += f", carrying {kept['bag']}"
    return sentence + "."


def _template_list(kept: dict[str, str], rng: np.random.Generator) -> str:
    """``<Subject> in <garments>, with <hair> and <bag>.``"""
    garments = [kept[g] for g in _GARMENTS if g in kept]
    rng.shuffle(garments)
    extras = [kept[k] for k in ("hair", "bag") if k in kept]
    rng.shuffle(extras)
    sentence = f"{_subject(kept, rng)} in {_join(garments)}"
    if extras:
        sentence += f", with {_join(extras)}"
    return sentence + "."


_TEMPLATES = (_template_two_sentences, _template_with, _template_list)


def _capitalise(text: str) -> str:
    """Upper-cases the first letter of every sentence."""
    sentences = text.split(". ")
    return ". ".join(s[:1].upper() + s[1:] for s in sentences)


def compose_caption(facts: PersonFacts, rng: np.random.Generator
                    ) -> tuple[str, tuple[str, ...]]:
    """One caption of a person with known ``facts``.

    Args:
        facts: The person's attributes (:func:`person_facts`).
        rng: Stream of every choice (template, synonyms, order, dropped attributes).

    Returns:
        ``(caption, mentioned)``: the caption (capitalised sentences ending with ``.``) and the
        names of :data:`ATTRIBUTES` it mentions (in :data:`ATTRIBUTES` order).
    """
    kept = _drop(_phrases(facts, rng), rng)
    caption = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))](kept, rng)
    return _capitalise(caption), tuple(a for a in ATTRIBUTES if a in kept)


def make_caption(identity: PersonIdentity, rng: np.random.Generator) -> str:
    """One caption of ``identity`` (see :func:`compose_caption`)."""
    return compose_caption(person_facts(identity), rng)[0]


def make_captions(identity: PersonIdentity, rng: np.random.Generator, count: int = 2,
                  max_tries: int = 20) -> list[str]:
    """``count`` captions of one image of ``identity``, distinct where possible.

    Args:
        identity: The person.
        rng: Stream of the image's captions (:func:`caption_rng`).
        count: Number of captions (at least 1; the real sets have 1 or 2, a few 3+).
        max_tries: Redraws per caption before a repeat is accepted.

    Returns:
        ``count`` captions.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    facts = person_facts(identity)
    captions: list[str] = []
    for _ in range(count):
        caption = compose_caption(facts, rng)[0]
        for _ in range(max_tries):
            if caption not in captions:
                break
            caption = compose_caption(facts, rng)[0]
        captions.append(caption)
    return captions


def caption_rng(seed: int, person: int, image: int) -> np.random.Generator:
    """The stream of the captions of image ``image`` of person ``person``."""
    return np.random.default_rng([seed, _TAG_CAPTION, person, image])


def processed_tokens(caption: str) -> list[str]:
    """CUHK-PEDES's ``processed_tokens`` of a caption: lower case, ASCII punctuation removed,
    split on whitespace (ShuangLI59 ``prepro_data.py``)."""
    return caption.lower().translate(str.maketrans("", "", string.punctuation)).strip().split()
