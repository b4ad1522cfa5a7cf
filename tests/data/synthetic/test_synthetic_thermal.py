"""Tests of the thermal renderer (label map coloured by temperature)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from torchreid_pixelfade.data.synthetic import render
from torchreid_pixelfade.data.synthetic.appearance import (
    camera_rng,
    identity_rng,
    image_rng,
    sample_camera,
    sample_identity,
)
from torchreid_pixelfade.data.synthetic.thermal import (
    ABSORPTION,
    BAG_TEMPERATURE,
    SKIN_TEMPERATURE,
    absorbed_heat,
    garment_temperature,
    render_thermal,
    sample_thermal_camera,
    sample_thermal_identity,
    thermal_camera_rng,
    thermal_identity_rng,
    thermal_palette,
    thermal_person_layer,
)

SEED = 3
PIDS = range(1, 41)


def _person(pid: int, seed: int = SEED):
    identity = sample_identity(pid, identity_rng(seed, pid))
    return identity, sample_thermal_identity(identity, thermal_identity_rng(seed, pid))


def _cameras(camid: int = 3, seed: int = SEED):
    return (sample_camera(camid, camera_rng(seed, camid)),
            sample_thermal_camera(camid, thermal_camera_rng(seed, camid)))


def _thermal(pid: int, index: int = 0, height: int = 64, width: int = 32) -> np.ndarray:
    identity, thermal = _person(pid)
    view, thermal_cam = _cameras()
    return render_thermal(identity, thermal, view, thermal_cam, image_rng(SEED, pid, 3, index),
                          height, width)


def test_thermal_images_are_grey_uint8_in_three_equal_channels() -> None:
    image = _thermal(1, height=48, width=24)
    assert image.shape == (48, 24, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 1])
    assert np.array_equal(image[..., 0], image[..., 2])
    assert image.std() > 5  # not a flat frame


def test_thermal_rendering_is_deterministic_from_the_seed() -> None:
    assert np.array_equal(_thermal(2), _thermal(2))
    assert not np.array_equal(_thermal(2, index=0), _thermal(2, index=1))
    assert _person(2) == _person(2)
    assert _person(2)[1] != _person(2, seed=SEED + 1)[1]


def test_palette_is_grey_and_skin_is_the_hottest_material() -> None:
    for pid in PIDS:
        identity, thermal = _person(pid)
        palette = thermal_palette(identity, thermal)
        assert palette.shape == (render.NUM_LABELS, 3) and palette.dtype == np.float32
        assert np.array_equal(palette[:, 0], palette[:, 1])
        grey = palette[:, 0]
        skin = grey[render.LABEL_SKIN]
        for label in (render.LABEL_HAIR, render.LABEL_TOP, render.LABEL_TOP_PATTERN,
                      render.LABEL_TROUSERS, render.LABEL_SHOES, render.LABEL_BAG):
            # the warmest garment, a thin black pattern fabric: 0.62 + 0.15 (absorbed light)
            # + 0.05 (second fabric) = 0.82, 0.03 below the skin
            assert skin > grey[label] + 0.02 * 255, render.PART_NAMES[label]
        # a bag is colder than a top of the same colour; absorbed light moves the top by 0.15
        assert grey[render.LABEL_BAG] < grey[render.LABEL_TOP] + ABSORPTION / 2 * 255
        assert abs(skin / 255 - SKIN_TEMPERATURE) <= 0.04 + 1e-6
        assert abs(grey[render.LABEL_BAG] / 255 - BAG_TEMPERATURE) <= 0.04 + 1e-6


def test_thick_clothing_is_cooler_than_thin_clothing() -> None:
    temps = [garment_temperature(t) for t in np.linspace(0, 1, 11)]
    assert all(a > b for a, b in itertools.pairwise(temps))
    assert 0.6 <= temps[0] <= 0.65 and 0.33 <= temps[-1] <= 0.37
    people = [_person(pid) for pid in range(1, 200)]
    coats = [t.top_thickness for i, t in people if i.long_sleeves]
    shirts = [t.top_thickness for i, t in people if not i.long_sleeves]
    assert min(coats) >= 0.4 and max(shirts) <= 0.5 and np.mean(coats) > np.mean(shirts)


def test_rendered_skin_is_warmer_than_clothing_and_background() -> None:
    identity, thermal = _person(5)
    labels = render.render_labels(identity, True, np.random.default_rng(0), 120.0)
    grey = render.colour_labels(labels, thermal_palette(identity, thermal))[..., 0]
    skin = grey[labels == render.LABEL_SKIN].mean()
    clothing = grey[np.isin(labels, (render.LABEL_TOP, render.LABEL_TOP_PATTERN,
                                     render.LABEL_TROUSERS))].mean()
    assert skin > clothing + 20
    # In the final image the person (alpha) is warmer than the cool background.
    view, _ = _cameras()
    layer = thermal_person_layer(identity, thermal, view, image_rng(SEED, 5, 3, 0), 64, 32)
    image = _thermal(5)[..., 0].astype(float)
    person, background = layer[..., 3] > 250, layer[..., 3] == 0
    assert image[person].mean() > image[background].mean() + 30


@pytest.mark.parametrize("pid,index", [(1, 0), (7, 2), (12, 1)])
def test_visible_and_thermal_share_the_silhouette(pid: int, index: int) -> None:
    identity, thermal = _person(pid)
    view, _ = _cameras()
    rng_seed = (SEED, pid, 3, index)
    thermal_alpha = thermal_person_layer(identity, thermal, view, image_rng(*rng_seed), 64, 32)
    # The visible renderer's own person layer (private seam) for the same generator state.
    visible_alpha = render._person_layer(identity, view, image_rng(*rng_seed), 64, 32)
    assert np.array_equal(thermal_alpha[..., 3], visible_alpha[..., 3])
    assert (thermal_alpha[..., 3] > 0).sum() > 100


def test_clothing_hue_is_lost_and_its_brightness_kept() -> None:
    identity, thermal = _person(9)

    def grey_of(colour):  # the grey of the same relative luminance
        value = round(0.2126 * colour[0] + 0.7152 * colour[1] + 0.0722 * colour[2])
        return (value, value, value)

    # clothes of another hue and the same brightness look the same in thermal
    greyed = type(identity)(**{**vars(identity), "top": grey_of(identity.top),
                               "trousers": grey_of(identity.trousers)})
    assert np.allclose(thermal_palette(identity, thermal), thermal_palette(greyed, thermal),
                       atol=0.2)  # grey levels: the rounding of the grey's value
    # a darker top is warmer, a lighter one cooler (absorbed light)
    grey = {}
    for value in (20, 128, 235):
        recoloured = type(identity)(**{**vars(identity), "top": (value,) * 3})
        grey[value] = thermal_palette(recoloured, thermal)[render.LABEL_TOP, 0]
    assert grey[20] > grey[128] + 0.1 * 255
    assert grey[128] > grey[235] + 0.1 * 255
    assert absorbed_heat((0, 0, 0)) == pytest.approx(0.15)
    assert absorbed_heat((255, 255, 255)) == pytest.approx(-0.15)
    # Different thermal attributes of the same shape change the picture.
    other = type(thermal)(**{**vars(thermal), "top_thickness": 1 - thermal.top_thickness})
    assert not np.array_equal(thermal_palette(identity, thermal),
                              thermal_palette(identity, other))


def test_palette_refuses_attributes_of_another_person() -> None:
    identity, _ = _person(1)
    _, thermal = _person(2)
    with pytest.raises(ValueError, match="pid 2"):
        thermal_palette(identity, thermal)
