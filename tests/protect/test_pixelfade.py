import pytest
import torch

from torchreid_pixelfade.io import quantize
from torchreid_pixelfade.metrics import ssim
from torchreid_pixelfade.protect import PixelFade, feature_distance
from torchreid_pixelfade.protect.functional import within


def fast(model, **kwargs):
    kwargs = {"steps": 20, **kwargs}
    return PixelFade(model, **kwargs)


def test_same_seed_same_output_different_seeds_differ(random_model, images):
    a = fast(random_model, seed=1)(images[:2])
    b = fast(random_model, seed=1)(images[:2])
    c = fast(random_model, seed=2)(images[:2])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_noise_is_unpredictable_by_default(random_model, images):
    assert not torch.equal(fast(random_model)(images[:1]), fast(random_model)(images[:1]))


def test_generator_advances_between_batches(random_model, images):
    protector = fast(random_model, seed=0)
    assert not torch.equal(protector(images[:1]), protector(images[:1]))


def test_outputs_are_8bit_images_in_unit_range(random_model, images):
    out = fast(random_model, seed=0)(images)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out * 255, (out * 255).round())


def test_without_quantize_outputs_leave_the_8bit_grid(random_model, images):
    out = fast(random_model, seed=0, quantize=False)(images[:2])
    assert not torch.equal(out * 255, (out * 255).round())


def test_constraint_holds_on_rounded_images_of_trained_model(trained_model, images):
    result = PixelFade(trained_model, steps=40, eps=0.05, eps_mode="relative",
                       seed=0).protect(images)
    reference = trained_model(images)
    limits = 0.05 * reference.pow(2).mean(1)
    # strict contract: the diagnostics describe the returned images, which are stored as they are
    assert torch.equal(quantize(result.images), result.images)
    recomputed = feature_distance(trained_model(result.images), reference)
    assert torch.allclose(recomputed, result.distance)
    assert torch.equal(result.constraint_met, within(recomputed, limits))
    # the default step control stops each image once its stored version meets eps
    assert result.constraint_met.all(), recomputed / limits


def test_fixed_loop_meets_the_constraint_for_most_images(trained_model, images):
    result = PixelFade(trained_model, steps=40, eps=0.05, eps_mode="relative", seed=0,
                       step_control="fixed").protect(images)
    ratio = result.distance / (0.05 * trained_model(images).pow(2).mean(1))
    # The paper's loop does not guarantee Eq. 1 for every image. The last PRO (step
    # T - no_replace_last - 1) can overshoot, and the remaining CO steps move by beta_temp with
    # momentum through the 8-bit rounding, so an image can end slightly above its bound. Which
    # image does depends on float details: on torch 2.15 all 8 met it; on torch 2.14.1 one ends
    # at 1.09x its bound. Measured on torch 2.14.1 over seeds 0-5: 6 to 8 of 8 met, median
    # distance/bound 0.19 to 0.38. Without the CO (beta = beta_temp = 0) none meets it and the
    # median ratio is 28, so these bounds still test that the constraint operation works.
    assert result.constraint_met.sum() >= 6, ratio
    assert ratio.median() < 0.5, ratio


def test_protected_images_look_like_noise_not_the_person(trained_model, images):
    out = PixelFade(trained_model, steps=40, eps=0.05, eps_mode="relative", seed=0)(images)
    assert ssim(out, images).mean() < 0.1
    assert (out - images).abs().mean() > 0.15


def test_every_value_replaced_after_warmup_cycle(random_model, images):
    result = fast(random_model, seed=0).protect(images)
    assert torch.equal(result.replaced_fraction, torch.ones(len(images)))


def test_no_warmup_and_unreachable_eps_replace_only_at_step_0(random_model, images):
    # Eq. 1 reads d <= eps, so any eps >= 0 (a negative one is refused) is met by the untouched
    # image at step 0 (d = 0 exactly), which replaces mask 0: one mask of five. After it the
    # features have moved, d > 0 = eps for good, and without warm-up nothing more is replaced.
    result = fast(random_model, seed=0, warmup_steps=0, eps=0.0).protect(images[:2])
    assert torch.allclose(result.replaced_fraction, torch.full((2,), 0.2), atol=1e-3)
    assert not result.constraint_met.any()


@pytest.mark.parametrize("batch", [1, 7])
def test_any_batch_size(random_model, images, batch):
    x = images[:batch] if batch <= len(images) else images.repeat(2, 1, 1, 1)[:batch]
    result = fast(random_model, seed=0, steps=8).protect(x)
    assert result.images.shape == x.shape
    assert result.distance.shape == result.constraint_met.shape == (batch,)


def test_bad_options_raise(random_model):
    with pytest.raises(ValueError, match="constraint_scope"):
        PixelFade(random_model, constraint_scope="pixel")
    with pytest.raises(ValueError, match="authorised model"):
        PixelFade(None)


@pytest.mark.parametrize("backbone", ["osnet_x0_25", "mobilenetv2_x1_0", "resnet50"])
def test_torchreid_backbones(backbone, images):
    from torchreid_pixelfade.models import AuthorizedModel, build_reid_model
    model = AuthorizedModel(build_reid_model(backbone))
    result = PixelFade(model, steps=2, seed=0).protect(images[:2])
    assert result.images.shape == (2, 3, 64, 32)
