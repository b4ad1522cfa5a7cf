"""Tests for torchreid_pixelfade.metrics.privacy."""
import warnings

import numpy as np
import pytest
import torch

from torchreid_pixelfade.metrics import anderson_darling, privacy_metrics, psnr, ssim
from torchreid_pixelfade.metrics.privacy import IMAGENET_MEAN, IMAGENET_STD, PSNR_CAP

H, W = 64, 32


def _smooth(batch: int = 1) -> torch.Tensor:
    """Natural-looking smooth colour gradients, (B, 3, H, W) in [0, 1]."""
    y = torch.linspace(0, 1, H)[:, None]
    x = torch.linspace(0, 1, W)[None, :]
    imgs = []
    for b in range(batch):
        r = 0.2 + 0.6 * y * (1 - 0.3 * x) + 0.05 * b
        g = 0.3 + 0.4 * torch.sin(3.0 * y + 2.0 * x + b) ** 2
        bl = 0.1 + 0.8 * x * y
        imgs.append(torch.stack([r, g, bl]))
    return torch.stack(imgs).clamp(0, 1)


@pytest.mark.parametrize("batch", [1, 3])
def test_identical_images(batch):
    imgs = _smooth(batch)
    assert ssim(imgs, imgs.clone()) == pytest.approx(np.ones(batch))
    np.testing.assert_array_equal(psnr(imgs, imgs.clone()), np.full(batch, PSNR_CAP))
    assert ssim(imgs, imgs).shape == (batch,)


def test_single_image_chw():
    img = _smooth(1)[0]
    assert ssim(img, img).shape == (1,)
    assert anderson_darling(img).shape == (1,)


def test_noise_vs_smooth_ssim_near_zero():
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(3, 3, H, W, generator=gen)
    values = ssim(noise, _smooth(3))
    assert values.shape == (3,)
    assert np.all(np.abs(values) < 0.1)


def test_psnr_known_mse():
    imgs = _smooth(3).clamp(0, 0.8)
    np.testing.assert_allclose(psnr(imgs + 0.1, imgs), 20.0, atol=1e-6)  # MSE 0.01 -> 20 dB


def test_numpy_layouts_match_torch():
    imgs = _smooth(2)
    hwc = (imgs.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    quantised = torch.from_numpy(hwc).permute(0, 3, 1, 2).double() / 255
    np.testing.assert_allclose(ssim(hwc, hwc[::-1]), ssim(quantised, quantised.flip(0)))
    np.testing.assert_allclose(anderson_darling(hwc[0]), anderson_darling(quantised[:1]))


def test_anderson_darling_gaussian_small_natural_large():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, 3, H, W, generator=gen)
    mean = torch.tensor(IMAGENET_MEAN)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD)[None, :, None, None]
    gaussian = z * std + mean  # unclamped: exactly N(0, 1) after normalisation
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy FutureWarning
        ad_noise = anderson_darling(gaussian)
        ad_smooth = anderson_darling(_smooth(3))
    assert ad_noise.shape == ad_smooth.shape == (3,)
    assert np.all(ad_noise < 2)
    assert np.all(ad_smooth > 50)


def test_anderson_darling_spaces():
    imgs = _smooth(2)
    for space in ("normalized", "pixel", "uint8"):
        values = anderson_darling(imgs, space=space)
        assert values.shape == (2,) and np.all(np.isfinite(values)) and np.all(values >= 0)
    assert np.all(np.isinf(anderson_darling(torch.full((1, 3, H, W), 0.5), space="pixel")))
    with pytest.raises(ValueError, match="space"):
        anderson_darling(imgs, space="lab")
    with pytest.raises(ValueError, match="std"):
        anderson_darling(imgs, std=(0.2, 0.2))


def test_shape_errors():
    imgs = _smooth(2)
    with pytest.raises(ValueError, match="same shape"):
        ssim(imgs, imgs[:1])
    with pytest.raises(ValueError, match="same shape"):
        psnr(imgs, imgs[..., :16])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        psnr(imgs[:, :1], imgs[:, :1])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        anderson_darling(imgs[0, 0])
    with pytest.raises(ValueError, match="H, W, 3"):
        ssim(np.zeros((2, 3, H, W)), np.zeros((2, 3, H, W)))
    with pytest.raises(ValueError, match="11x11"):
        ssim(imgs[..., :8, :8], imgs[..., :8, :8])


@pytest.mark.parametrize("batch", [1, 3])
def test_privacy_metrics(batch):
    originals = _smooth(batch)
    protected = (originals + 0.05 * torch.randn_like(originals)).clamp(0, 1)
    out = privacy_metrics(protected, originals)
    assert set(out) == {"ssim", "psnr", "ad"}
    for values in out.values():
        assert values.shape == (batch,) and values.dtype == np.float64
    np.testing.assert_allclose(out["ad"], anderson_darling(protected))
    assert np.all(out["psnr"] > 20) and np.all(out["psnr"] < PSNR_CAP)
