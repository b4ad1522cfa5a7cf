"""Properties shared by the iterative protectors (PixelFade, AVIH)."""
import pytest

from torchreid_pixelfade.protect import AVIH, PixelFade


@pytest.mark.parametrize("cls, kwargs", [(PixelFade, {"step_control": "fixed"}), (AVIH, {})])
def test_one_forward_and_one_backward_per_step(cls, kwargs, random_model, images):
    calls = {"forward": 0, "backward": 0}
    net = random_model.model
    net.register_forward_hook(lambda *a: calls.__setitem__("forward", calls["forward"] + 1))
    net.register_full_backward_hook(
        lambda *a: calls.__setitem__("backward", calls["backward"] + 1))
    cls(random_model, steps=12, seed=0, **kwargs)(images[:2])
    # T steps (PixelFade's adaptive control: tests/protect/test_adaptive_constraint.py) + the original's reference feature + the final, stored image's feature
    assert calls == {"forward": 12 + 2, "backward": 12}


@pytest.mark.parametrize("cls", [PixelFade, AVIH])
def test_model_stays_frozen_and_its_mode_is_restored(cls, random_model, images):
    random_model.model.train()
    cls(random_model, steps=3, seed=0)(images[:2])
    assert random_model.model.training
    assert all(p.grad is None and not p.requires_grad for p in random_model.parameters())
