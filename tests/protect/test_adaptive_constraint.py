"""``step_control='adaptive'``: the stored image meets eps without per-model step sizes."""
import pytest
import torch

from torchreid_pixelfade import config as C
from torchreid_pixelfade.protect import PixelFade, PixelFadeParams
from torchreid_pixelfade.protect.pixelfade import PixelFadeResult

RELATIVE = {"steps": 20, "eps": 0.05, "eps_mode": "relative", "seed": 0}
# ten times the paper's step sizes: the fixed loop overshoots eps at every step
TOO_LARGE = {"beta": 0.1, "beta_temp": 0.4}


def ratio(model, images, result):
    """``(B,)`` distance of the stored images over their bound (relative eps 0.05)."""
    reference = model(images)
    return result.distance / (0.05 * reference.pow(2).mean(1))


@pytest.mark.parametrize("steps", [{}, TOO_LARGE])
def test_every_stored_image_meets_eps_whatever_the_step_sizes(trained_model, images, steps):
    adaptive = PixelFade(trained_model, **RELATIVE, **steps).protect(images)
    assert adaptive.constraint_met.all(), ratio(trained_model, images, adaptive)
    assert (ratio(trained_model, images, adaptive) <= 1).all()


def test_the_fixed_loop_misses_eps_with_those_step_sizes(trained_model, images):
    # the same draws and steps with the paper's constant step sizes: most images overshoot,
    # so the test above is not vacuous
    fixed = PixelFade(trained_model, **RELATIVE, **TOO_LARGE,
                      step_control="fixed").protect(images)
    assert fixed.constraint_met.sum() <= 2, ratio(trained_model, images, fixed)


def test_steps_count_the_passes_each_image_used(trained_model, images):
    fixed = PixelFade(trained_model, **RELATIVE, step_control="fixed").protect(images)
    assert isinstance(fixed, PixelFadeResult)
    assert fixed.steps.dtype == torch.long and fixed.steps.tolist() == [20] * len(images)
    adaptive = PixelFade(trained_model, **RELATIVE, extra_steps=7).protect(images)
    # at least one step of the final phase, at most T + extra_steps
    assert (adaptive.steps >= 20 - 5 + 1).all() and (adaptive.steps <= 27).all()


def test_unreachable_eps_spends_the_budget_and_returns_the_closest_state(random_model,
                                                                        images):
    # eps = 0 is never met after the first replacement: every image runs to T + extra_steps
    def run(extra):
        return PixelFade(random_model, steps=10, eps=0.0, seed=0, extra_steps=extra,
                         retries=0).protect(images[:4])
    short, long = run(0), run(6)
    assert short.steps.tolist() == [10] * 4 and long.steps.tolist() == [16] * 4
    assert not long.constraint_met.any()
    # the longer run's trajectory extends the shorter one: its closest state is no farther
    assert (long.distance <= short.distance * (1 + 1e-5)).all()


def test_every_retry_of_an_unreachable_eps_spends_the_budget_again(random_model, images):
    def run(retries):
        return PixelFade(random_model, steps=10, eps=0.0, seed=0, extra_steps=3,
                         retries=retries).protect(images[:3])
    once, thrice = run(0), run(2)
    assert once.steps.tolist() == [13] * 3 and thrice.steps.tolist() == [3 * 13] * 3
    assert not thrice.constraint_met.any()
    # the closest of the three attempts is kept: no farther than the first
    assert (thrice.distance <= once.distance * (1 + 1e-5)).all()


def test_retries_redo_only_the_images_that_missed_and_keep_the_closer_result(trained_model,
                                                                              images):
    # a bound most images meet and some miss (tight, and no extra steps to settle)
    kwargs = {**RELATIVE, "eps": 0.005, "extra_steps": 0}
    keys = [f"g/{i}.png" for i in range(len(images))]
    once = PixelFade(trained_model, **kwargs, retries=0).protect(images, keys)
    again = PixelFade(trained_model, **kwargs, retries=1).protect(images, keys)
    missed = ~once.constraint_met
    assert 0 < int(missed.sum()) < len(images)
    # an image that met is returned as it was, at its cost
    assert torch.equal(again.images[~missed], once.images[~missed])
    assert torch.equal(again.steps[~missed], once.steps[~missed])
    # one that missed ran the loop again from new draws (20 - 5 + 1 passes at least) and
    # kept the closer of its two results, with that result's replaced fraction
    assert (again.steps[missed] >= once.steps[missed] + 16).all()
    assert (again.distance[missed] <= once.distance[missed] * (1 + 1e-5)).all()
    kept_first = (again.images == once.images).flatten(1).all(1)
    assert torch.equal(again.replaced_fraction[kept_first], once.replaced_fraction[kept_first])
    assert (missed & ~kept_first).any()  # some retry was kept
    assert int(again.constraint_met.sum()) > int(once.constraint_met.sum())


@pytest.mark.parametrize("coupled", [{"target": "other"}, {"clamp": "batch"}, {"noise": True},
                                     {"extra_steps": 0, "no_replace_last": 0}])
def test_no_retry_where_a_retry_would_change_the_setting_or_measure_nothing(random_model,
                                                                           images, coupled):
    # eps 0 is never met: a retry would double the passes. 'other' and the batch clamp take
    # the batch into the result, supplied draws are for comparing runs, and a loop without a
    # final phase measures nothing to retry on
    kwargs = {"steps": 10, "eps": 0.0, "seed": 0, "extra_steps": 3, "retries": 2, **coupled}
    noise = torch.randn(images[:3].shape) if kwargs.pop("noise", False) else None
    result = PixelFade(random_model, **kwargs).protect(images[:3], noise=noise)
    assert result.steps.tolist() == [10 + kwargs["extra_steps"]] * 3


def test_batch_scope_runs_the_fixed_loop(random_model, images):
    kwargs = {"steps": 12, "eps": 5e-4, "seed": 0, "constraint_scope": "batch"}
    adaptive = PixelFade(random_model, **kwargs).protect(images[:3])
    fixed = PixelFade(random_model, **kwargs, step_control="fixed").protect(images[:3])
    assert torch.equal(adaptive.images, fixed.images)
    assert adaptive.steps.tolist() == [12] * 3


def test_fixed_per_image_scope_is_the_official_loop_on_one_image(random_model, images):
    # for one image the batch-mean check is the image's own, so 'image' scope + 'fixed' must
    # equal 'batch' scope, which test_official_reference checks against the official loop
    official = {"clamp": "batch", "quantize": False, "steps": 30, "eps": 5e-4, "seed": 0}
    image = PixelFade(random_model, **official, step_control="fixed").protect(images[:1])
    batch = PixelFade(random_model, **official, constraint_scope="batch").protect(images[:1])
    assert torch.equal(image.images, batch.images)


def test_keyed_result_does_not_depend_on_the_batch(random_model, images, native_kernels):
    # the final phase computes only the images still running, a set that depends on the batch;
    # with kernels that compute an image alike at any batch size, results do not
    protector = PixelFade(random_model, steps=12, eps=5e-4, seed=3, extra_steps=10)
    keys = [f"q/{i}.png" for i in range(len(images))]
    whole = protector.protect(images, keys=keys)
    assert len(set(whole.steps.tolist())) > 1  # images stopped at different steps
    for size in (1, 3):
        parts = [protector.protect(images[i:i + size], keys=keys[i:i + size])
                 for i in range(0, len(images), size)]
        assert torch.equal(torch.cat([p.images for p in parts]), whole.images)
        assert torch.equal(torch.cat([p.steps for p in parts]), whole.steps)


def count_passes(model) -> dict:
    """``{"forward": n, "backward": n}`` of ``model``'s network, counted from now on."""
    calls = {"forward": 0, "backward": 0}
    net = model.model
    net.register_forward_hook(lambda *a: calls.__setitem__("forward", calls["forward"] + 1))
    net.register_full_backward_hook(
        lambda *a: calls.__setitem__("backward", calls["backward"] + 1))
    return calls


def test_one_pass_per_step_of_the_images_still_running(random_model, images):
    calls = count_passes(random_model)
    result = PixelFade(random_model, steps=12, eps=5e-4, seed=0, retries=0).protect(images[:4])
    # one batched pass per step while any image runs; + the reference and the stored feature
    assert calls == {"forward": int(result.steps.max()) + 2,
                     "backward": int(result.steps.max())}


def test_a_retry_is_one_more_loop_over_the_images_that_missed(random_model, images):
    calls = count_passes(random_model)
    # eps 0: all four miss, and all four are retried together
    PixelFade(random_model, steps=12, eps=0.0, seed=0, extra_steps=3,
              retries=1).protect(images[:4])
    assert calls == {"forward": 2 * 15 + 2, "backward": 2 * 15}


def test_empty_batch_has_empty_steps(random_model, images):
    result = PixelFade(random_model, steps=3).protect(images[:0])
    assert result.steps.shape == (0,) and result.steps.dtype == torch.long


def test_options_are_checked_and_reach_the_config():
    assert PixelFadeParams().step_control == "adaptive"
    with pytest.raises(ValueError, match="step_control"):
        PixelFadeParams(step_control="tuned")
    with pytest.raises(ValueError, match="extra_steps >= 0"):
        PixelFadeParams(extra_steps=-1)
    with pytest.raises(ValueError, match="retries >= 0"):
        PixelFadeParams(retries=-1)
    node = C.get_default_config().pixelfade
    assert node.step_control == "adaptive" and node.extra_steps == 40 and node.retries == 0
