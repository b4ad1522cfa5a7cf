"""Each protector declares its hyper-parameters once (``Params``); everything else derives."""
import dataclasses
import json

import pytest
import torch

from torchreid_pixelfade.protect import (AVIH, AVIHParams, Blur, BlurParams, Identity,
                                         IdentityParams, Mosaic, MosaicParams, Noise,
                                         NoiseParams, PixelFade,
                                         PixelFadeParams, build_protector, list_protectors,
                                         protector_params)

# Manifests of existing protected folders store hparams(); resuming them compares the dicts, and
# the evaluation hook hashes them into its cache key. These are the defaults as of the Params
# refactor (the same keys, order and values as the hand-written hparams() before it), plus
# step_control, extra_steps and retries (the adaptive step control, docs/RESULTS.md "Constraint by
# construction"): a deliberate change, so folders protected before it are not resumed as if
# their images had been protected the same way.
PINNED = {
    "pixelfade": {"steps": 100, "warmup_steps": 5, "num_masks": 5, "eps": 0.03,
                  "eps_mode": "absolute", "momentum": 0.6, "beta": 0.01, "beta_temp": 0.04,
                  "no_replace_last": 5, "loss_reduction": "mean", "constraint_scope": "image",
                  "mask_index": "step", "mask_unit": "element", "co_every_step": True,
                  "clamp": "valid", "step_control": "adaptive", "extra_steps": 40, "retries": 0,
                  "quantize": True, "seed": None, "target": "noise",
                  "noise_weight": 1.0, "replacement": "replace", "perturb_amplitude": 0.5,
                  "l1_weight": 1.0},
    "avih": {"steps": 100, "step_size": 0.01, "momentum": 0.3, "decay": 0.85, "patience": 16,
             "vc_weight": 0.001, "init": "random", "key_weight": 0.2, "quantize": True,
             "seed": None, "key_model": None},
    "blur": {"sigma": None, "quantize": True},
    "mosaic": {"cell": None, "quantize": True},
    "identity": {"quantize": True},
    "noise": {"std": 0.25, "quantize": True, "seed": None},
}
CLASSES = {"pixelfade": (PixelFade, PixelFadeParams), "avih": (AVIH, AVIHParams),
           "blur": (Blur, BlurParams), "mosaic": (Mosaic, MosaicParams),
           "identity": (Identity, IdentityParams), "noise": (Noise, NoiseParams)}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_default_hparams_are_pinned(name, random_model):
    params = build_protector(name, random_model).hparams()
    assert list(params) == list(PINNED[name])
    assert params == PINNED[name]
    assert {key: type(value) for key, value in params.items()} == {
        key: type(value) for key, value in PINNED[name].items()}


def test_every_registered_protector_is_pinned():
    assert sorted(PINNED) == list_protectors()


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_params_class_is_exposed_and_registered(name):
    cls, params_cls = CLASSES[name]
    assert cls.Params is params_cls and protector_params(name) is params_cls
    assert all(field.metadata.get("doc") for field in dataclasses.fields(params_cls))
    assert all(field.name in params_cls.__doc__ for field in dataclasses.fields(params_cls))


def test_protector_params_rejects_unknown_names():
    with pytest.raises(ValueError, match="choose one of .*pixelfade"):
        protector_params("nope")


def test_hparams_follow_the_constructor_arguments(random_model):
    protector = PixelFade(random_model, steps=7, eps=1, seed=3, target="zeros")
    params = protector.hparams()
    assert params == {**PINNED["pixelfade"], "steps": 7, "eps": 1.0, "seed": 3,
                      "target": "zeros"}
    assert isinstance(params["eps"], float)  # as before: float knobs are stored as floats
    assert json.loads(json.dumps(params)) == params


def test_numbers_are_coerced_and_checked():
    assert PixelFadeParams(steps=5.0, beta=1).steps == 5
    assert isinstance(PixelFadeParams(beta=1).beta, float)
    assert AVIHParams(patience=3.0).patience == 3
    assert BlurParams(sigma=2).sigma == 2  # optional fields are kept as given
    with pytest.raises(TypeError, match="PixelFadeParams.steps must be an integer"):
        PixelFadeParams(steps=2.5)
    with pytest.raises(TypeError, match="AVIHParams.decay must be a number"):
        AVIHParams(decay=None)


def test_unknown_keyword_names_the_key_and_lists_valid_ones(random_model):
    with pytest.raises(TypeError, match=r"unknown hyper-parameter\(s\) \['sigmaa'\].*'sigma'"):
        Blur(random_model, sigmaa=2.0)
    with pytest.raises(TypeError, match="stepz"):
        build_protector("pixelfade", random_model, stepz=3)


@pytest.mark.parametrize("kwargs, match", [
    ({"eps_mode": "ratio"}, "eps_mode"), ({"loss_reduction": "max"}, "loss_reduction"),
    ({"mask_index": "random"}, "mask_index"), ({"mask_unit": "row"}, "mask_unit"),
    ({"clamp": "none"}, "clamp"), ({"steps": 0}, "steps >= 1"),
    ({"num_masks": 0}, "num_masks >= 1"), ({"warmup_steps": -1}, "warmup_steps >= 0")])
def test_pixelfade_params_validate_choices_and_ranges(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PixelFadeParams(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": -1}, "steps >= 0"), ({"patience": 0}, "patience >= 1"),
    ({"decay": 0.0}, "decay"), ({"step_size": -0.1}, "step_size"),
    ({"vc_weight": -1.0}, "vc_weight"), ({"key_weight": -1.0}, "key_weight")])
def test_avih_params_validate_ranges(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AVIHParams(**kwargs)


def test_params_are_frozen_and_attributes_are_read_only_aliases(random_model):
    protector = PixelFade(random_model, steps=7, seed=1)
    assert (protector.steps, protector.seed, protector.quantize) == (7, 1, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        protector.params.steps = 3
    with pytest.raises(AttributeError, match="hyper-parameter"):
        protector.steps = 3
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        protector.nope  # noqa: B018


def test_avih_key_model_is_an_argument_recorded_by_name(random_model):
    protector = AVIH(random_model, key_model=torch.nn.Identity())
    assert protector.hparams()["key_model"] == "Identity"
    assert "key_model" not in {field.name for field in dataclasses.fields(AVIHParams)}
    with pytest.raises(TypeError, match="key_model"):
        AVIH(random_model, key_model="Identity")


def test_params_build_the_kwargs_of_a_protector(random_model):
    # how a config module builds a protector from its node: validate early, then pass through
    params = protector_params("pixelfade")(steps=3, seed=0)
    protector = build_protector("pixelfade", random_model, **dataclasses.asdict(params))
    assert protector.params == params
