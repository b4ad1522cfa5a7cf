"""Tests of the synthetic renderer: part-label map, per-label colour lookup, whole image."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from torchreid_pixelfade.data import synthetic
from torchreid_pixelfade.data.synthetic import (
    NUM_LABELS,
    PART_NAMES,
    colour_labels,
    identity_palette,
    render_labels,
)
from torchreid_pixelfade.data.synthetic.appearance import identity_rng
from torchreid_pixelfade.data.synthetic.render import (
    LABEL_TOP,
    LABEL_TOP_PATTERN,
    LABEL_TRANSPARENT,
    label_canvas_size,
)


def _identity(pattern: str = "hstripes") -> synthetic.PersonIdentity:
    return dataclasses.replace(synthetic.sample_identity(1, identity_rng(0, 1)), pattern=pattern)


def test_render_labels_is_an_integer_part_map() -> None:
    unit = 120.0
    labels = render_labels(_identity(), True, np.random.default_rng(0), unit)
    assert labels.dtype == np.uint8 and labels.shape == label_canvas_size(unit)
    assert len(PART_NAMES) == NUM_LABELS
    assert set(np.unique(labels)) <= set(range(NUM_LABELS))
    assert (labels == LABEL_TRANSPARENT).any() and (labels == LABEL_TOP_PATTERN).any()
    again = render_labels(_identity(), True, np.random.default_rng(0), unit)
    np.testing.assert_array_equal(labels, again)


def test_plain_top_has_no_pattern_label() -> None:
    labels = render_labels(_identity("plain"), False, np.random.default_rng(0), 120.0)
    assert (labels == LABEL_TOP).any() and not (labels == LABEL_TOP_PATTERN).any()


def test_colour_labels_looks_up_every_channel_the_same_way() -> None:
    identity = _identity()
    labels = render_labels(identity, True, np.random.default_rng(1), 100.0)
    palette = identity_palette(identity)
    assert palette.shape == (NUM_LABELS, 3) and palette.dtype == np.float32
    rgba = colour_labels(labels, palette)
    assert rgba.shape == (*labels.shape, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 3], np.where(labels > 0, 255, 0))
    assert not rgba[labels == LABEL_TRANSPARENT, :3].any()
    # A one-channel table (e.g. materials of another modality) gives the same values per channel.
    for channel in range(3):
        single = colour_labels(labels, palette[:, channel : channel + 1])
        assert single.shape == (*labels.shape, 2)
        np.testing.assert_array_equal(single[..., 0], rgba[..., channel])
        np.testing.assert_array_equal(single[..., 1], rgba[..., 3])


def test_render_person_shape_and_rng_only() -> None:
    state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    ident = synthetic.sample_identity(1, np.random.default_rng(0))
    cam = synthetic.sample_camera(1, np.random.default_rng(1))
    img = synthetic.render_person(ident, cam, np.random.default_rng(2), 128, 64)
    assert img.shape == (128, 64, 3) and img.dtype == np.uint8
    assert img.std() > 10  # not a flat image
    again = synthetic.render_person(ident, cam, np.random.default_rng(2), 128, 64)
    np.testing.assert_array_equal(img, again)
    # The global RNGs are untouched.
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2] == after[2]
    assert torch.equal(torch_state, torch.random.get_rng_state())
