import pytest
import torch

from torchreid_pixelfade.protect import (Blur, Identity, Mosaic, build_protector, gaussian_blur,
                                         list_protectors, mosaic)


def test_registry_lists_and_rejects_names():
    assert {"identity", "blur", "mosaic", "pixelfade"} <= set(list_protectors())
    with pytest.raises(ValueError, match="choose one of .*pixelfade"):
        build_protector("nope")


def test_build_protector_passes_objects_through():
    blur = Blur(sigma=2.0)
    assert build_protector(blur) is blur


def test_identity_is_8bit_rounding_only(images):
    out = Identity()(images)
    assert torch.equal(out, images.mul(255).round().div(255))


def test_gaussian_blur_keeps_constants_and_smooths():
    constant = torch.full((1, 3, 32, 16), 0.3)
    assert torch.allclose(gaussian_blur(constant, 3.0), constant, atol=1e-6)
    noise = torch.rand(1, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    assert gaussian_blur(noise, 3.0).std() < 0.3 * noise.std()


def test_blur_sigma_scales_with_height(images):
    assert torch.allclose(Blur(quantize=False)(images), gaussian_blur(images, 12 * 64 / 256))


def test_mosaic_fills_cells_with_top_left_pixel():
    x = torch.rand(1, 3, 10, 7)
    out = mosaic(x, 4)
    assert torch.equal(out[..., 0:4, 0:4], x[..., 0:1, 0:1].expand(1, 3, 4, 4))
    assert torch.equal(out[..., 8:10, 4:7], x[..., 8:9, 4:5].expand(1, 3, 2, 3))  # truncated cell


def test_mosaic_default_cell_is_24_at_256():
    x = torch.rand(1, 3, 256, 128)
    assert torch.equal(Mosaic(quantize=False)(x), mosaic(x, 24))
    # 6 x 11 = 66 cells at 256x128
    assert Mosaic(quantize=False)(x)[0, 0].unique().numel() == 66


@pytest.mark.parametrize("name", ["identity", "blur", "mosaic"])
def test_simple_protectors_report_feature_distance(name, random_model, images):
    result = build_protector(name, random_model).protect(images)
    assert result.images.shape == images.shape and result.distance.shape == (len(images),)
    assert 0 <= result.images.min() and result.images.max() <= 1


def test_bad_images_are_rejected():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        Identity()(torch.rand(3, 8, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Identity()(torch.rand(1, 3, 8, 4) * 255)


def test_noise_ignores_the_image_and_is_seeded(images):
    from torchreid_pixelfade.protect import Noise

    first = Noise(seed=3).protect(images, keys=[f"k{i}" for i in range(len(images))]).images
    again = Noise(seed=3).protect(1 - images, keys=[f"k{i}" for i in range(len(images))]).images
    assert torch.equal(first, again)  # the original carries no information into the output
    other = Noise().protect(images).images
    assert not torch.equal(first, other)  # unseeded: unpredictable
    assert abs(first.mean().item() - 0.5) < 0.05 and 0.15 < first.std().item() < 0.3
    with pytest.raises(ValueError, match="std"):
        Noise(std=0)
