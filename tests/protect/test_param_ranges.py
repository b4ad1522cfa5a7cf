"""Every numeric hyper-parameter is checked where it is declared (its Params ``_validate``)."""
import pytest

from torchreid_pixelfade.protect import (AVIHParams, BlurParams, MosaicParams, PixelFade,
                                         PixelFadeParams)

NAN = float("nan")

REFUSED = [
    (PixelFadeParams, "eps", -0.01, "eps >= 0"), (PixelFadeParams, "eps", NAN, "eps >= 0"),
    (PixelFadeParams, "beta", -0.01, "beta >= 0"), (PixelFadeParams, "beta", NAN, "beta >= 0"),
    (PixelFadeParams, "beta_temp", -1.0, "beta_temp >= 0"),
    (PixelFadeParams, "momentum", NAN, r"0 <= momentum < 1"),
    (PixelFadeParams, "momentum", 1.0, r"0 <= momentum < 1"),
    (PixelFadeParams, "momentum", -0.1, r"0 <= momentum < 1"),
    (PixelFadeParams, "steps", -3, "steps >= 1"),
    (PixelFadeParams, "no_replace_last", -1, "no_replace_last >= 0"),
    (PixelFadeParams, "noise_weight", 1.5, r"0 <= noise_weight <= 1"),
    (PixelFadeParams, "noise_weight", -0.1, r"0 <= noise_weight <= 1"),
    (PixelFadeParams, "noise_weight", NAN, r"0 <= noise_weight <= 1"),
    (PixelFadeParams, "perturb_amplitude", -0.5, "perturb_amplitude >= 0"),
    (PixelFadeParams, "l1_weight", -1.0, "l1_weight >= 0"),
    (PixelFadeParams, "l1_weight", NAN, "l1_weight >= 0"),
    (AVIHParams, "steps", -1, "steps >= 0"),
    (AVIHParams, "step_size", -0.1, "step_size >= 0"),
    (AVIHParams, "step_size", NAN, "step_size >= 0"),
    (AVIHParams, "momentum", NAN, r"0 <= momentum < 1"),
    (AVIHParams, "momentum", 1.5, r"0 <= momentum < 1"),
    (AVIHParams, "decay", 0.0, r"0 < decay <= 1"), (AVIHParams, "decay", 1.1, r"0 < decay <= 1"),
    (AVIHParams, "decay", NAN, r"0 < decay <= 1"),
    (AVIHParams, "patience", 0, "patience >= 1"),
    (AVIHParams, "vc_weight", -1.0, "vc_weight >= 0"),
    (AVIHParams, "vc_weight", NAN, "vc_weight >= 0"),
    (AVIHParams, "key_weight", NAN, "key_weight >= 0"),
    (BlurParams, "sigma", 0.0, "sigma > 0"), (BlurParams, "sigma", -2, "sigma > 0"),
    (BlurParams, "sigma", NAN, "sigma > 0"),
    (MosaicParams, "cell", 0, "cell >= 1"), (MosaicParams, "cell", -4, "cell >= 1"),
    (MosaicParams, "cell", 2.5, "cell must be an integer"),
]


@pytest.mark.parametrize("params_cls, field, value, accepted", REFUSED,
                         ids=[f"{c.__name__}.{f}={v}" for c, f, v, _ in REFUSED])
def test_out_of_range_values_are_refused_naming_field_and_range(params_cls, field, value,
                                                                accepted):
    with pytest.raises(ValueError, match=accepted) as error:
        params_cls(**{field: value})
    assert params_cls.__name__ in str(error.value) and repr(value) in str(error.value)


ACCEPTED = [
    (PixelFadeParams, {"eps": 0.0, "beta": 0.0, "beta_temp": 0.0, "momentum": 0.0,
                       "noise_weight": 0.0, "perturb_amplitude": 0.0, "l1_weight": 0.0,
                       "no_replace_last": 0}),
    (PixelFadeParams, {"eps": float("inf"), "noise_weight": 1.0, "momentum": 0.99}),
    (AVIHParams, {"steps": 0, "step_size": 0.0, "momentum": 0.0, "decay": 1.0, "patience": 1,
                  "vc_weight": 0.0, "key_weight": 0.0}),
    (BlurParams, {"sigma": 0.5}), (BlurParams, {"sigma": None}), (BlurParams, {"sigma": 3}),
    (MosaicParams, {"cell": 1}), (MosaicParams, {"cell": None}),
]


@pytest.mark.parametrize("params_cls, kwargs", ACCEPTED)
def test_range_boundaries_are_accepted(params_cls, kwargs):
    params = params_cls(**kwargs)
    assert all(getattr(params, key) == value for key, value in kwargs.items())


def test_protector_constructor_refuses_like_its_params(random_model):
    with pytest.raises(ValueError, match="eps >= 0"):
        PixelFade(random_model, eps=-1.0)
