import json

import pytest
import torch

from torchreid_pixelfade.metrics import ssim
from torchreid_pixelfade.protect import AVIH, build_protector, feature_distance
from torchreid_pixelfade.protect.avih import _update_step_sizes, variance_consistency_loss


def fast(model, **kwargs):
    kwargs = {"steps": 20, **kwargs}
    return AVIH(model, **kwargs)


def test_feature_distance_falls_far_below_that_of_the_initial_noise(trained_model, images):
    x = images[:4]
    # steps=0 with the same seed returns the (rounded) initial noise image
    initial = AVIH(trained_model, steps=0, seed=0).protect(x)
    result = fast(trained_model, seed=0).protect(x)
    # measured: initial 3.9 .. 6.0, after 20 steps 0.018 .. 0.048 (>= 80x lower)
    assert (result.distance < initial.distance / 10).all(), (initial.distance, result.distance)
    recomputed = feature_distance(trained_model(result.images), trained_model(x))
    assert torch.allclose(recomputed, result.distance)
    assert result.constraint_met is None and result.replaced_fraction is None


def test_encrypted_images_look_like_noise_not_the_person(trained_model, images):
    x = images[:4]
    out = fast(trained_model, seed=0)(x)
    # measured: mean |diff| 0.33, SSIM <= 0.015
    assert (out - x).abs().mean() > 0.2
    assert ssim(out, x).max() < 0.1


def test_same_seed_same_output_different_seeds_differ(random_model, images):
    a = fast(random_model, steps=5, seed=1)(images[:2])
    b = fast(random_model, steps=5, seed=1)(images[:2])
    c = fast(random_model, steps=5, seed=2)(images[:2])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_noise_is_unpredictable_by_default(random_model, images):
    assert not torch.equal(fast(random_model, steps=2)(images[:1]),
                           fast(random_model, steps=2)(images[:1]))


def test_generator_advances_between_batches(random_model, images):
    protector = fast(random_model, steps=2, seed=0)
    assert not torch.equal(protector(images[:1]), protector(images[:1]))


@pytest.mark.parametrize("batch", [1, 3])
def test_outputs_are_8bit_images_in_unit_range(random_model, images, batch):
    result = fast(random_model, steps=5, seed=0).protect(images[:batch])
    out = result.images
    assert out.shape == images[:batch].shape and result.distance.shape == (batch,)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out * 255, (out * 255).round())


def test_without_quantize_outputs_leave_the_8bit_grid(random_model, images):
    out = fast(random_model, steps=5, seed=0, quantize=False)(images[:2])
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out * 255, (out * 255).round())


def test_images_are_independent_of_their_batch(trained_model, images):
    # deterministic start, so only the per-image losses and step sizes can couple images
    protector = fast(trained_model, steps=10, init="original", quantize=False)
    together = protector(images[:3])
    alone = protector(images[1:2])
    assert torch.allclose(together[1:2], alone, atol=1e-4)


def test_variance_consistency_loss_is_zero_for_constant_and_positive_for_noise():
    torch.manual_seed(0)
    constant = torch.full((2, 3, 64, 32), 0.4)
    noisy = torch.rand(2, 3, 64, 32)
    assert torch.allclose(variance_consistency_loss(constant), torch.zeros(2), atol=1e-6)
    loss = variance_consistency_loss(noisy)
    assert loss.shape == (2,) and (loss > 0.1).all()
    # per image: one image's loss does not depend on the other
    assert torch.allclose(variance_consistency_loss(noisy[1:]), loss[1:])
    with pytest.raises(ValueError, match="4x4"):
        variance_consistency_loss(torch.rand(1, 3, 4, 4))


def test_variance_consistency_loss_matches_a_direct_computation():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 6, 5)
    expected = 0.0
    for c in range(3):
        sums = torch.stack([x[0, c, i:i + 4, j:j + 4].sum() for i in range(3) for j in range(2)])
        expected += sums.var(unbiased=True)
    assert torch.allclose(variance_consistency_loss(x), expected.view(1))


@pytest.mark.parametrize("steps", [0, 1])
def test_original_init_stays_close_to_the_original(random_model, images, steps):
    x = images[:2]
    out = AVIH(random_model, steps=steps, init="original")(x)
    # the gradient is normalised to mean |g| = 1, so one step moves values by step_size (0.01)
    # on average, plus at most half an 8-bit level of rounding; measured: mean 0.0099, max 0.047
    assert (out - x).abs().mean() <= 0.01 + 0.5 / 255 + 1e-6
    assert (out - x).abs().max() < 0.1


def test_key_term_pulls_towards_the_original(trained_model, images):
    x = images[:4]
    plain = fast(trained_model, seed=0)(x)
    keyed = fast(trained_model, seed=0, key_model=torch.nn.Identity(), key_weight=1.0)(x)
    # measured: mean |diff| 0.332 without the key term, 0.306 with it
    assert (keyed - x).abs().mean() < (plain - x).abs().mean() - 0.01


def test_step_size_decays_after_patience_increases():
    count = torch.zeros(2, dtype=torch.long)
    alpha = torch.full((2,), 0.01)
    previous = None
    for i in range(8):
        # image 0's loss rises every iteration, image 1's falls
        loss = torch.tensor([float(i), -float(i)])
        count, alpha = _update_step_sizes(loss, previous, count, alpha, i, patience=3, decay=0.5)
        previous = loss
    # increases counted at i = 2..7 (six): two decays for image 0, none for image 1
    assert torch.allclose(alpha, torch.tensor([0.0025, 0.01]))
    assert count.tolist() == [0, 0]


def test_hparams_are_json_serialisable(random_model):
    params = AVIH(random_model, key_model=torch.nn.Identity(), seed=3).hparams()
    assert json.loads(json.dumps(params))["key_model"] == "Identity"
    assert AVIH(random_model).hparams()["key_model"] is None
    assert {"steps", "step_size", "momentum", "decay", "patience", "vc_weight", "init",
            "key_weight", "quantize", "seed"} <= set(params)


def test_registry_and_bad_options(random_model, images):
    protector = build_protector("avih", random_model, steps=3)
    assert isinstance(protector, AVIH) and protector.name == "avih"
    assert protector(images[:1]).shape == (1, 3, 64, 32)
    with pytest.raises(ValueError, match="init"):
        AVIH(random_model, init="zeros")
    with pytest.raises(ValueError, match="authorised model"):
        AVIH(None)
    with pytest.raises(ValueError, match="4x4"):
        AVIH(random_model, steps=1)(torch.rand(1, 3, 4, 4))



def test_step_size_decays_after_the_update_as_the_official_code(random_model, images):
    # Increases are counted from i = 2 on, so with patience 1 the first decay can come at i = 2;
    # the official code applies it from the next step, so three steps never see it. With this
    # large step size the loss of image 3 rises at i = 2 (measured: 0.00451 -> 0.00481).
    kwargs = {"steps": 3, "step_size": 0.1, "patience": 1, "quantize": False, "seed": 0}
    decayed = AVIH(random_model, decay=0.01, **kwargs)(images[:4])
    assert torch.equal(decayed, AVIH(random_model, decay=1.0, **kwargs)(images[:4]))
    # ... but the fourth step does, for that image only
    kwargs["steps"] = 4
    decayed = AVIH(random_model, decay=0.01, **kwargs)(images[:4])
    plain = AVIH(random_model, decay=1.0, **kwargs)(images[:4])
    changed = (decayed != plain).flatten(1).any(dim=1)
    assert changed.tolist() == [False, False, False, True]
