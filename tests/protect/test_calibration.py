"""The per-model eps calibration by the horizontal-flip distance."""
import pytest
import torch

from torchreid_pixelfade.protect.calibration import (flip_calibrated_eps, flip_distances,
                                                     flip_to_pair_ratio, round_significant)


def flip_ratios(model, images, **kwargs):
    return flip_distances(model, images, relative=True, **kwargs)


def first_row(images: torch.Tensor) -> torch.Tensor:
    """A hand-checkable 'model': the first row of the red channel, ``(B, W)``."""
    return images[:, 0, 0, :]


def two_pixel_images(*rows) -> torch.Tensor:
    """``(N, 3, 1, 2)`` images whose red channel is ``(a, b)``."""
    images = torch.zeros(len(rows), 3, 1, 2)
    images[:, 0, 0] = torch.tensor(rows)
    return images


def test_flip_ratio_by_hand():
    # f = (a, b), its mirror (b, a): MSE (a - b)^2 over the mean square (a^2 + b^2) / 2
    images = two_pixel_images((1.0, 0.0), (0.5, 0.5), (0.6, 0.2))
    ratios = flip_ratios(first_row, images)
    expected = torch.tensor([2.0, 0.0, 2 * 0.4 ** 2 / (0.36 + 0.04)])
    assert torch.allclose(ratios, expected)
    # 'sum' scales numerator and denominator alike
    assert torch.allclose(flip_ratios(first_row, images, reduction="sum"), expected)


def test_absolute_flip_distance_by_hand():
    images = two_pixel_images((1.0, 0.0), (0.5, 0.5), (0.6, 0.2))
    assert torch.allclose(flip_distances(first_row, images), torch.tensor([1.0, 0.0, 0.16]))
    assert torch.allclose(flip_distances(first_row, images, reduction="sum"),
                          torch.tensor([2.0, 0.0, 0.32]))
    assert flip_calibrated_eps(first_row, images, eps_mode="absolute") == 0.16
    assert flip_calibrated_eps(first_row, images, 2.0, reduction="sum",
                               eps_mode="absolute") == 0.64


def test_calibrated_eps_is_the_multiple_of_the_median_rounded():
    images = two_pixel_images((1.0, 0.0), (0.5, 0.5), (0.6, 0.2))  # ratios 2, 0, 0.8
    assert flip_calibrated_eps(first_row, images) == 0.8
    assert flip_calibrated_eps(first_row, images, multiple=0.5) == 0.4
    assert flip_calibrated_eps(first_row, images, multiple=1 / 3) == 0.27  # 0.2666.. to 2 digits


def test_calibration_does_not_depend_on_the_batching(trained_model, images):
    one = flip_calibrated_eps(trained_model, images, batch_size=1)
    many = flip_calibrated_eps(trained_model, images, batch_size=len(images))
    assert one == many > 0
    assert one == round_significant(float(flip_ratios(trained_model, images).quantile(0.5)))


def test_images_with_a_zero_feature_are_left_out():
    images = two_pixel_images((0.0, 0.0), (0.6, 0.2))
    assert torch.isnan(flip_ratios(first_row, images)[0])
    assert flip_calibrated_eps(first_row, images) == 0.8


@pytest.mark.parametrize("value, expected", [(0.3312, 0.33), (123.4, 120.0), (0.0, 0.0),
                                             (0.0999, 0.1), (-0.0456, -0.046)])
def test_round_significant(value, expected):
    assert round_significant(value) == pytest.approx(expected, abs=0, rel=1e-12)


@pytest.mark.parametrize("images, multiple, message", [
    (two_pixel_images((0.6, 0.2)), 0.0, "must be > 0"),
    (torch.zeros(0, 3, 1, 2), 1.0, "at least one image"),
    (two_pixel_images((0.0, 0.0)), 1.0, "zero feature"),
])
def test_bad_calibration_inputs_are_named(images, multiple, message):
    with pytest.raises(ValueError, match=message):
        flip_calibrated_eps(first_row, images, multiple)
    with pytest.raises(ValueError, match="eps_mode"):
        flip_calibrated_eps(first_row, two_pixel_images((0.6, 0.2)), eps_mode="ratio")


def test_flip_to_pair_ratio_by_hand():
    # flips (1,0)->(0,1): MSE 1; (0.6,0.2): 0.16; (0.3,0.5): 0.04 -> median 0.16. Pairs:
    # (1,0)-(0.6,0.2): (0.16+0.04)/2 = 0.1; (1,0)-(0.3,0.5): (0.49+0.25)/2 = 0.37;
    # (0.6,0.2)-(0.3,0.5): (0.09+0.09)/2 = 0.09 -> median 0.1
    images = two_pixel_images((1.0, 0.0), (0.6, 0.2), (0.3, 0.5))
    assert flip_to_pair_ratio(first_row, images) == pytest.approx(1.6)
    assert flip_to_pair_ratio(first_row, images, batch_size=1) == pytest.approx(1.6)
    with pytest.raises(ValueError, match="at least 2"):
        flip_to_pair_ratio(first_row, images[:1])
