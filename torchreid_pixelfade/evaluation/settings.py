"""Evaluation settings: which side is queried with what, each side original or protected.

The paper's four settings (query x gallery) are O2O, P2P, O2P and P2O; a text-to-image engine has
T2O and T2P (text queries cannot be protected). A :class:`Setting` names the *form* of each side;
the features of each form come from the caller.
"""
from __future__ import annotations

import dataclasses

#: One letter per form, used in setting names (``O2P``).
FORM_LETTERS = {"original": "O", "protected": "P", "text": "T"}


@dataclasses.dataclass(frozen=True)
class Setting:
    """A query form against a gallery form, e.g. ``Setting('original', 'protected')`` = O2P."""

    query: str
    gallery: str

    def __post_init__(self) -> None:
        for form in (self.query, self.gallery):
            if form not in FORM_LETTERS:
                raise ValueError(f"Unknown form {form!r}; choose one of {list(FORM_LETTERS)}")

    @property
    def name(self) -> str:
        """``O2O``, ``P2P``, ``O2P``, ``P2O``, ``T2O``, ``T2P``."""
        return f"{FORM_LETTERS[self.query]}2{FORM_LETTERS[self.gallery]}"

    def __str__(self) -> str:
        return self.name


O2O = Setting("original", "original")
P2P = Setting("protected", "protected")
O2P = Setting("original", "protected")
P2O = Setting("protected", "original")
#: The paper's four settings, in its order.
IMAGE_SETTINGS = (O2O, P2P, O2P, P2O)
#: Their names (``results.json`` keys).
SETTINGS = tuple(s.name for s in IMAGE_SETTINGS)


def setting(name: str | Setting) -> Setting:
    """The :class:`Setting` called ``name`` (``'P2P'``); a setting is returned unchanged.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).

    Example:
        >>> setting("O2P")
        Setting(query='original', gallery='protected')
        >>> Setting("text", "protected").name
        'T2P'
    """
    if isinstance(name, Setting):
        return name
    letters = {letter: form for form, letter in FORM_LETTERS.items()}
    query, _, gallery = str(name).partition("2")
    if query not in letters or gallery not in letters:
        raise ValueError(f"Unknown setting {name!r}; e.g. one of {SETTINGS}")
    return Setting(letters[query], letters[gallery])
