"""Tests of the synthetic generator's config, attribute sampling and seeded streams."""
from __future__ import annotations

import numpy as np
import pytest

from torchreid_pixelfade.data.synthetic import (
    BAGS,
    PATTERNS,
    SyntheticConfig,
    sample_camera,
    sample_identity,
)
from torchreid_pixelfade.data.synthetic.appearance import camera_rng, identity_rng, image_rng


def test_invalid_config() -> None:
    with pytest.raises(ValueError):
        SyntheticConfig(images_per_id_per_camera=1)
    with pytest.raises(ValueError):
        SyntheticConfig(num_cameras=7)
    with pytest.raises(ValueError):
        SyntheticConfig(num_train_ids=1000, num_test_ids=600)


def test_config_counts() -> None:
    config = SyntheticConfig(num_train_ids=4, num_test_ids=3, images_per_id_per_camera=3,
                             num_cameras=2)
    assert config.num_train == 4 * 2 * 3
    assert config.num_query == 3 * 2
    assert config.num_gallery == 3 * 2 * 2
    assert config.total_images == config.num_train + config.num_query + config.num_gallery


def _is_rgb(colour: tuple[int, ...]) -> bool:
    return len(colour) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in colour)


def test_sampled_identities_are_valid_and_seeded() -> None:
    for pid in range(1, 41):
        identity = sample_identity(pid, identity_rng(0, pid))
        assert identity == sample_identity(pid, identity_rng(0, pid))
        assert identity.pid == pid
        assert identity.pattern in PATTERNS and identity.bag in BAGS
        assert identity.bag_side in (-1, 1)
        for colour in (identity.skin, identity.hair, identity.top, identity.pattern_colour,
                       identity.trousers, identity.shoes, identity.bag_colour):
            assert _is_rgb(colour)
        assert 0.85 <= identity.body_width <= 1.2 and 0.93 <= identity.leg_length <= 1.07
    assert sample_identity(1, identity_rng(0, 1)) != sample_identity(1, identity_rng(1, 1))


def test_sampled_cameras_are_valid_and_seeded() -> None:
    for camid in range(1, 7):
        camera = sample_camera(camid, camera_rng(0, camid))
        assert camera == sample_camera(camid, camera_rng(0, camid))
        assert camera.camid == camid
        assert _is_rgb(camera.wall_top) and _is_rgb(camera.wall_bottom) and _is_rgb(camera.floor)
        assert np.isclose(np.mean(camera.colour_cast), 1.0)
        assert 0.5 <= camera.horizon <= 0.78 and 0.0 <= camera.blur <= 0.9


def test_streams_are_independent() -> None:
    first = [identity_rng(0, 1).random(), camera_rng(0, 1).random(), image_rng(0, 1, 1, 0).random()]
    assert len(set(first)) == 3
    assert image_rng(0, 1, 1, 0).random() != image_rng(0, 1, 1, 1).random()
