"""Fast paths of the authorised model: equal results, float32 state, restored global state, the
``auto`` rule, the config keys and PixelFade end to end with each option."""
import copy

import pytest
import torch

from torchreid_pixelfade import config as C
from torchreid_pixelfade.engines.image import ProtectionOptions
from torchreid_pixelfade.models import (AuthorizedModel, FastPaths, allow_tf32, numerics,
                                        resolve_fast_paths)
from torchreid_pixelfade.protect import PixelFade
from torchreid_pixelfade.protect.functional import feature_distance

from conftest import TinyReID


def twin(model: AuthorizedModel, **options) -> AuthorizedModel:
    """The same net (copied weights) with fast-path ``options``."""
    return AuthorizedModel(copy.deepcopy(model.model), name=model.name, **options)


def features_and_gradient(model: AuthorizedModel, images: torch.Tensor):
    """Features at ``images`` and the input gradient of PixelFade's loss at perturbed images."""
    torch.manual_seed(1)
    start = (images + 0.05 * torch.randn_like(images)).clamp(0, 1).requires_grad_(True)
    reference = model(images).detach()
    features = model(start)
    grad, = torch.autograd.grad(feature_distance(features, reference).sum(), start)
    return features.detach(), grad


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image cosine, exact for tiny vectors (``cosine_similarity`` clamps the norms'
    product at 1e-8)."""
    a, b = (torch.nn.functional.normalize(t.flatten(1).double(), dim=1, eps=1e-300)
            for t in (a, b))
    return (a * b).sum(dim=1)


def tf32_flags() -> tuple:
    """The TF32 flags as :func:`allow_tf32` reads them on this PyTorch."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(getattr(cudnn, "conv", None),
                                                       "fp32_precision"):
        return matmul.fp32_precision, cudnn.conv.fp32_precision
    return matmul.allow_tf32, cudnn.allow_tf32


def autocast_enabled(device_type: str = "cpu") -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


# ------------------------------------------------------------------ channels_last


def test_channels_last_gives_the_plain_features_and_gradients(trained_model, images):
    fast = twin(trained_model, channels_last=True)
    conv = fast.model.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.requires_grad
    for key, value in trained_model.model.state_dict().items():
        assert torch.equal(value, fast.model.state_dict()[key]), key
    plain_features, plain_grad = features_and_gradient(trained_model, images)
    features, grad = features_and_gradient(fast, images)
    assert torch.allclose(features, plain_features, rtol=1e-4, atol=1e-5)
    assert cosines(grad, plain_grad).min() >= 0.9999
    assert torch.allclose(grad, plain_grad, rtol=1e-3, atol=1e-3 * plain_grad.abs().max())


def test_channels_last_keeps_float64_and_contiguous_inputs(trained_model, images):
    fast = twin(trained_model, channels_last=True)
    x = images.double().requires_grad_(True)
    features = fast(x)
    grad, = torch.autograd.grad(features.sum(), x)
    assert features.dtype == grad.dtype == torch.float64
    assert images.is_contiguous()


# ------------------------------------------------------------------ precision


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_returns_float32_features_and_gradients(trained_model, images,
                                                                precision):
    fast = twin(trained_model, precision=precision)
    features, grad = features_and_gradient(fast, images)
    assert features.dtype == grad.dtype == torch.float32
    plain_features, _ = features_and_gradient(trained_model, images)
    relative = (features - plain_features).norm(dim=1) / plain_features.norm(dim=1)
    assert relative.max() < 0.05  # half precision, not another function
    assert not autocast_enabled("cpu")


def test_fp16_gradient_is_scaled_into_range_per_image(trained_model, images, monkeypatch):
    """Each image's gradient, however small or large (PixelFade's near its constraint are below
    float16's range), reaches the input as float32's would, up to float16 rounding."""
    weights = torch.tensor([1e-9, 1e-7, 1e-5, 1e-3, 1e-1, 1.0, 1e1, 1e2])

    def gradient(model):
        x = images.clone().requires_grad_(True)
        return torch.autograd.grad((model(x).sum(dim=1) * weights).sum(), x)[0]

    fast = twin(trained_model, precision="fp16")
    expected, scaled = gradient(trained_model), gradient(fast)
    assert scaled.dtype == torch.float32 and torch.isfinite(scaled).all()
    assert cosines(expected, scaled).min() > 0.99
    ratio = scaled.flatten(1).norm(dim=1) / expected.flatten(1).norm(dim=1)
    assert torch.allclose(ratio, torch.ones(8), atol=0.02)
    monkeypatch.setattr("torchreid_pixelfade.models.scaled_backward", lambda net, x: net(x))
    assert (gradient(fast)[0] == 0).all()  # unscaled, the smallest gradient is flushed to zero


def test_tf32_is_fp32_on_cpu(trained_model, images):
    before = tf32_flags()
    plain_features, plain_grad = features_and_gradient(trained_model, images)
    features, grad = features_and_gradient(twin(trained_model, precision="tf32"), images)
    assert torch.equal(features, plain_features) and torch.equal(grad, plain_grad)
    assert tf32_flags() == before


def test_allow_tf32_sets_and_restores_the_flags_without_cuda():
    before = tf32_flags()
    with pytest.raises(RuntimeError, match="inside"):
        with numerics("tf32", torch.device("cuda")):  # a device string; CUDA is not needed
            assert all(flag in ("tf32", True) for flag in tf32_flags())
            raise RuntimeError("inside")
    assert tf32_flags() == before
    with allow_tf32():
        assert all(flag in ("tf32", True) for flag in tf32_flags())
    assert tf32_flags() == before


def test_fp32_and_cpu_numerics_change_nothing_global():
    before = tf32_flags()
    for precision in ("fp32", "tf32"):
        with numerics(precision, torch.device("cpu")):
            assert tf32_flags() == before and not autocast_enabled("cpu")
    with numerics("bf16", torch.device("cpu")):
        assert autocast_enabled("cpu")
    assert not autocast_enabled("cpu") and tf32_flags() == before


def test_compile_is_lazy_once_and_outside_the_module_tree(trained_model, images, monkeypatch):
    compiled = []

    def fake_compile(module):  # torch.compile's contract: a callable module, made once
        compiled.append(module)
        return copy.deepcopy(module)

    monkeypatch.setattr(torch, "compile", fake_compile)
    fast = twin(trained_model, compile=True)
    keys = list(fast.state_dict())
    assert not compiled
    features = fast(images)
    fast(images)
    assert compiled == [fast.model] and list(fast.state_dict()) == keys
    assert torch.allclose(features, trained_model(images))
    assert "compile=True" in repr(fast)


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="precision must be one of .*'bf16'"):
        AuthorizedModel(TinyReID(), precision="fp8")
    with pytest.raises(ValueError, match="channels_last must be True or False"):
        AuthorizedModel(TinyReID(), channels_last="on")
    assert FastPaths().is_plain() and not FastPaths(precision="bf16").is_plain()


# ------------------------------------------------------------------ auto


@pytest.mark.parametrize("device,expected", [
    ("cpu", {"channels_last": True, "precision": "fp32", "compile": False}),
    ("cuda", {"channels_last": True, "precision": "tf32", "compile": False}),
    ("cuda:1", {"channels_last": True, "precision": "tf32", "compile": False}),
    (torch.device("cuda", 0), {"channels_last": True, "precision": "tf32", "compile": False}),
    ("meta", {"channels_last": False, "precision": "fp32", "compile": False}),
])
def test_auto_resolves_per_device_type(device, expected):
    assert resolve_fast_paths(device) == expected


def test_explicit_values_override_auto():
    assert resolve_fast_paths("cuda", channels_last="off", precision="bf16", compile=True) == {
        "channels_last": False, "precision": "bf16", "compile": True}
    assert resolve_fast_paths("cpu", channels_last=False)["channels_last"] is False
    assert resolve_fast_paths("meta", channels_last="on")["channels_last"] is True
    with pytest.raises(ValueError, match=r"channels_last must be one of \('auto', 'on', 'off'\)"):
        resolve_fast_paths("cpu", channels_last="yes")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_fast_paths("cpu", precision="fp64")
    with pytest.raises(ValueError, match="compile must be True or False"):
        resolve_fast_paths("cpu", compile="auto")


# ------------------------------------------------------------------ config and workflows


def test_config_keys_default_to_auto_and_reach_the_options():
    cfg = C.get_default_config()
    assert C.protection_options(cfg)["fast_paths"] == {"channels_last": "auto",
                                                        "precision": "auto", "compile": False}
    C.merge_opts(cfg, ["pixelfade.channels_last", "off", "pixelfade.precision", "bf16",
                       "pixelfade.compile", "True"])
    options = C.protection_options(cfg)["fast_paths"]
    assert resolve_fast_paths("cpu", **options) == {"channels_last": False,
                                                     "precision": "bf16", "compile": True}
    ProtectionOptions(fast_paths=options)


@pytest.mark.parametrize("key,value,valid", [
    ("pixelfade.channels_last", "yes", "('auto', 'on', 'off')"),
    ("pixelfade.precision", "fp64", "('auto', 'fp32', 'tf32', 'bf16', 'fp16')"),
])
def test_config_validation_names_the_key_and_the_values(key, value, valid):
    cfg = C.get_default_config()
    C.merge_opts(cfg, [key, value])
    with pytest.raises(ValueError) as error:
        C.check_run_options(cfg)
    assert key in str(error.value) and valid in str(error.value) and value in str(error.value)


def test_config_refuses_a_boolean_for_channels_last(tmp_path):
    cfg = C.get_default_config()
    with pytest.raises(ValueError, match="pixelfade.channels_last"):
        C.merge_opts(cfg, ["pixelfade.channels_last", "True"])
    (tmp_path / "c.yaml").write_text("pixelfade:\n  channels_last: 'on'\n")
    C.merge_file(cfg, str(tmp_path / "c.yaml"))
    assert cfg.pixelfade.channels_last == "on"


def test_protection_options_validate_fast_paths():
    with pytest.raises(ValueError, match="precision must be one of"):
        ProtectionOptions(fast_paths={"precision": "fp8"})
    assert ProtectionOptions().fast_paths == {}


def test_build_authorized_model_applies_the_options_to_protection_only(tmp_path):
    from torchreid_pixelfade.models import build_reid_model
    from torchreid_pixelfade.workflows import build_authorized_model

    torch.save(build_reid_model("osnet_x0_25").state_dict(), tmp_path / "w.pth")
    cfg = C.get_default_config()
    C.merge_opts(cfg, ["model.name", "osnet_x0_25"])
    weights = str(tmp_path / "w.pth")
    assert build_authorized_model(cfg, weights, "cpu").fast_paths == FastPaths()
    protecting = build_authorized_model(cfg, weights, "cpu", fast_paths=True)
    assert protecting.fast_paths == FastPaths(**resolve_fast_paths("cpu"))
    C.merge_opts(cfg, ["pixelfade.channels_last", "off", "pixelfade.precision", "bf16"])
    assert build_authorized_model(cfg, weights, "cpu", fast_paths=True).fast_paths == \
        FastPaths(channels_last=False, precision="bf16")


def test_vi_models_take_the_options_for_protection_only(tmp_path):
    from torchreid_pixelfade.engines.visible_infrared.model import build_vi_model
    from torchreid_pixelfade.workflows.visible_infrared import vi_models

    torch.save({"net": build_vi_model("osnet_x0_25", num_classes=1).state_dict()},
               tmp_path / "vi.pth")
    cfg = C.get_default_config()
    C.merge_opts(cfg, ["model.name", "osnet_x0_25", "pixelfade.precision", "bf16"])
    weights = str(tmp_path / "vi.pth")
    assert all(m.fast_paths == FastPaths() for m in vi_models(cfg, weights, "cpu"))
    visible, infrared = vi_models(cfg, weights, "cpu", fast_paths=True)
    assert infrared.fast_paths == FastPaths(channels_last=True, precision="bf16")
    assert visible.fast_paths == FastPaths()  # RGB queries are never protected


# ------------------------------------------------------------------ PixelFade end to end


@pytest.mark.parametrize("options", [{"channels_last": True}, {"precision": "tf32"},
                                     {"precision": "bf16"}, {"precision": "fp16"},
                                     {"channels_last": True, "precision": "bf16"}])
def test_pixelfade_runs_with_each_option(trained_model, images, options):
    plain = PixelFade(trained_model, steps=6, seed=0).protect(images)
    result = PixelFade(twin(trained_model, **options), steps=6, seed=0).protect(images)
    assert result.images.dtype == torch.float32 and result.images.shape == images.shape
    assert 0 <= result.images.min() and result.images.max() <= 1
    assert result.images.is_contiguous()
    assert torch.isfinite(result.distance).all() and result.constraint_met.dtype == torch.bool
    assert torch.equal(result.replaced_fraction > 0, plain.replaced_fraction > 0)
    assert not autocast_enabled("cpu")


def test_pixelfade_with_channels_last_matches_plain(trained_model, images):
    plain = PixelFade(trained_model, steps=6, seed=0).protect(images)
    fast = PixelFade(twin(trained_model, channels_last=True), steps=6, seed=0).protect(images)
    levels = (fast.images - plain.images).abs().mul(255).round()
    assert (levels > 0).float().mean() < 0.01  # float rounding may move a few 8-bit levels
    assert torch.allclose(fast.distance, plain.distance, rtol=1e-2, atol=1e-6)
