"""Synthetic pedestrian dataset in Market-1501 layout.

The generator draws crude but recognisable pedestrians (head, hair, torso, arms, legs, shoes and
an optional bag) on camera-specific street-like backgrounds. Every identity has its own clothing
colours, top pattern, sleeve/trouser style, bag and body proportions; every camera has its own
background, illumination (gain, colour cast, gamma), viewpoint (horizontal scale, shear,
mirroring, preferred facing direction) and blur/noise level. Each image further jitters the
person's position, scale, pose and brightness, and is stored as a JPEG. Identities are therefore
distinguishable by their clothes, but only through camera changes, which makes it a small, fast,
offline stand-in for a real Re-ID benchmark (a small CNN trained from scratch reaches a clearly
non-trivial Rank-1).

Modules, one job each:

* :mod:`.appearance`: :class:`SyntheticConfig`, identity / camera attribute sampling and the
  seeded random streams.
* :mod:`.render`: background, part-label map (:func:`render_labels`), per-label colour lookup
  and shading (:func:`colour_labels`), and the whole image (:func:`render_person`).
* :mod:`.market1501`: the idempotent Market-1501 layout writer
  (:func:`make_synthetic_market1501`).
* :mod:`.images`: images as a tensor (:func:`make_synthetic_images`).
* :mod:`.thermal`: the same label map through a temperature lookup (skin hot, clothing by
  thickness, cool background), grey in three channels (:func:`render_thermal`).
* :mod:`.sysu_regdb`: SYSU-MM01 and RegDB layout writers (:func:`make_synthetic_sysu_mm01`,
  :func:`make_synthetic_regdb`).
* :mod:`.captions`: captions written from each person's known attributes (varied templates,
  synonyms, dropped attributes).
* :mod:`.pedes`: CUHK-PEDES, ICFG-PEDES and RSTPReid format writers.

All randomness comes from local :class:`numpy.random.Generator` objects seeded from the config
seed; the global numpy / Python / torch RNGs are never touched, so the output is byte-identical
for a seed.
"""
from __future__ import annotations

from .appearance import (
    BAGS,
    PATTERNS,
    RGB,
    CameraStyle,
    PersonIdentity,
    SyntheticConfig,
    sample_camera,
    sample_identity,
)
from .images import make_synthetic_images
from .market1501 import (
    DATA_SUBDIR,
    DATASET_DIR,
    GENERATOR_RECORD,
    GENERATOR_VERSION,
    JPEG_QUALITY,
    SPLITS,
    make_synthetic_market1501,
)
from .render import (
    NUM_LABELS,
    PART_NAMES,
    colour_labels,
    identity_palette,
    render_labels,
    render_person,
)

from .captions import (COLOUR_NAMES, HAIR_COLOUR_NAMES, PersonFacts, caption_rng, colour_name,
                       hair_colour_name, make_caption, make_captions, person_facts,
                       processed_tokens)
from .pedes import (CUHK_PEDES_DIR, ICFG_JSON_NAMES, ICFG_PEDES_DIR, PEDES_GENERATOR_VERSION,
                    RSTPREID_DIR, SyntheticCuhkPedesConfig, SyntheticIcfgPedesConfig,
                    SyntheticPedesConfig, SyntheticRstpReidConfig, make_synthetic_cuhk_pedes,
                    make_synthetic_icfg_pedes, make_synthetic_rstpreid)
from .sysu_regdb import (REGDB_DATASET_DIR, SYSU_DATASET_DIR, VI_GENERATOR_VERSION,
                         SyntheticRegDBConfig, SyntheticSysuConfig, make_synthetic_regdb,
                         make_synthetic_sysu_mm01)
from .thermal import (ThermalCameraStyle, ThermalIdentity, render_thermal, sample_thermal_camera,
                      sample_thermal_identity, thermal_palette)

__all__ = [
    "COLOUR_NAMES", "HAIR_COLOUR_NAMES", "PersonFacts", "caption_rng", "colour_name",
    "hair_colour_name", "make_caption", "make_captions", "person_facts", "processed_tokens",
    "CUHK_PEDES_DIR", "ICFG_JSON_NAMES", "ICFG_PEDES_DIR", "PEDES_GENERATOR_VERSION",
    "RSTPREID_DIR", "SyntheticCuhkPedesConfig", "SyntheticIcfgPedesConfig", "SyntheticPedesConfig",
    "SyntheticRstpReidConfig", "make_synthetic_cuhk_pedes", "make_synthetic_icfg_pedes",
    "make_synthetic_rstpreid",
    "REGDB_DATASET_DIR", "SYSU_DATASET_DIR", "VI_GENERATOR_VERSION", "SyntheticRegDBConfig",
    "SyntheticSysuConfig", "make_synthetic_regdb", "make_synthetic_sysu_mm01",
    "ThermalCameraStyle", "ThermalIdentity", "render_thermal", "sample_thermal_camera",
    "sample_thermal_identity", "thermal_palette",
    "SyntheticConfig",
    "PersonIdentity",
    "CameraStyle",
    "sample_identity",
    "sample_camera",
    "render_person",
    "render_labels",
    "colour_labels",
    "identity_palette",
    "make_synthetic_market1501",
    "make_synthetic_images",
    "PART_NAMES",
    "NUM_LABELS",
    "PATTERNS",
    "BAGS",
    "RGB",
    "GENERATOR_VERSION",
    "GENERATOR_RECORD",
    "DATASET_DIR",
    "DATA_SUBDIR",
    "SPLITS",
    "JPEG_QUALITY",
]
