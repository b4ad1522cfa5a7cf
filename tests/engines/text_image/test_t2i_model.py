"""The IRRA-compatible dual encoder: parameter names, shapes, pooling, masks, loading and the
encoders used for protection."""
from __future__ import annotations

import pytest
import torch

from torchreid_pixelfade.engines.text_image.model import (
    CLIP_MEAN,
    CLIP_STD,
    DualEncoder,
    build_t2i_model,
    causal_mask,
    grid_size,
    image_encoder,
    text_encoder,
)
from torchreid_pixelfade.models import AuthorizedModel, load_weights

VOCAB = 40
EOT = VOCAB - 1


def captions(batch: int = 3, length: int = 32, seed: int = 0) -> torch.Tensor:
    """Token ids in IRRA's layout: sot, words, eot at different positions, zero padding."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        n = 3 + 4 * row
        tokens[row, 0] = VOCAB - 2
        tokens[row, 1:n + 1] = torch.randint(1, VOCAB - 3, (n,), generator=g)
        tokens[row, n + 1] = EOT
    return tokens


@pytest.fixture(scope="module")
def tiny() -> DualEncoder:
    torch.manual_seed(0)
    return build_t2i_model("vit_tiny", num_classes=5, vocab_size=VOCAB).eval()


# ------------------------------------------------------------------ IRRA's names


def irra_keys(vision_layers: int, text_layers: int, cmt_depth: int) -> set[str]:
    """State-dict keys of an IRRA checkpoint (sdm+mlm+id), written from IRRA's module tree."""
    def block(prefix: str) -> list[str]:
        names = ["attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
                 "attn.out_proj.bias", "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight",
                 "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight",
                 "ln_2.bias"]
        return [f"{prefix}.{n}" for n in names]

    keys = ["base_model.visual.class_embedding", "base_model.visual.positional_embedding",
            "base_model.visual.proj", "base_model.visual.conv1.weight",
            "base_model.visual.ln_pre.weight", "base_model.visual.ln_pre.bias",
            "base_model.visual.ln_post.weight", "base_model.visual.ln_post.bias",
            "base_model.positional_embedding", "base_model.text_projection",
            "base_model.token_embedding.weight", "base_model.ln_final.weight",
            "base_model.ln_final.bias", "classifier.weight", "classifier.bias",
            "cross_attn.in_proj_weight", "cross_attn.in_proj_bias", "cross_attn.out_proj.weight",
            "cross_attn.out_proj.bias", "mlm_head.dense.weight", "mlm_head.dense.bias",
            "mlm_head.ln.weight", "mlm_head.ln.bias", "mlm_head.fc.weight", "mlm_head.fc.bias"]
    keys += [f"{ln}.{p}" for ln in ("ln_pre_t", "ln_pre_i", "ln_post") for p in ("weight", "bias")]
    for i in range(vision_layers):
        keys += block(f"base_model.visual.transformer.resblocks.{i}")
    for i in range(text_layers):
        keys += block(f"base_model.transformer.resblocks.{i}")
    for i in range(cmt_depth):
        keys += block(f"cross_modal_transformer.resblocks.{i}")
    return set(keys)


def test_irra_preset_has_irra_names():
    # IRRA's depths (12 + 12 + 4 blocks) with narrow widths: the same key set, built fast.
    net = build_t2i_model("irra_vit_b16", num_classes=3, vocab_size=VOCAB, embed_dim=64,
                          image_size=(32, 16), vision_width=64, vision_heads=1, text_width=64,
                          text_heads=1)
    assert set(net.state_dict()) == irra_keys(12, 12, 4)


@pytest.mark.slow
def test_irra_vit_b16_has_irra_names_and_shapes():
    # ~195M parameters on the meta device: no memory; the seconds go to torch's first import
    # of its meta kernels.
    with torch.device("meta"):
        net = build_t2i_model("irra_vit_b16", num_classes=11003)
    state = net.state_dict()
    assert set(state) == irra_keys(12, 12, 4)
    shapes = {"base_model.visual.conv1.weight": (768, 3, 16, 16),
              "base_model.visual.positional_embedding": (24 * 8 + 1, 768),
              "base_model.visual.proj": (768, 512),
              "base_model.token_embedding.weight": (49408, 512),
              "base_model.positional_embedding": (77, 512),
              "base_model.text_projection": (512, 512),
              "base_model.transformer.resblocks.0.attn.in_proj_weight": (1536, 512),
              "classifier.weight": (11003, 512),
              "cross_attn.in_proj_weight": (1536, 512),
              "mlm_head.fc.weight": (49408, 512)}
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert "logit_scale" in dict(net.named_buffers())
    assert "logit_scale" not in state  # IRRA keeps it out of the checkpoint
    assert net.base_model.transformer.resblocks[0].attn.num_heads == 8
    assert net.base_model.visual.transformer.resblocks[0].attn.num_heads == 12
    assert net.cross_attn.num_heads == 8


def test_irra_temperature_and_grid():
    net = build_t2i_model("vit_tiny", num_classes=3, vocab_size=VOCAB)
    assert net.logit_scale.item() == pytest.approx(50.0)
    assert grid_size((384, 128), 16, 16) == (24, 8)
    assert grid_size((384, 128), 16, 12) == (31, 10)
    with pytest.raises(ValueError, match="patch"):
        grid_size((8, 8), 16, 16)


def test_optional_heads():
    net = build_t2i_model("vit_tiny", num_classes=0, vocab_size=VOCAB, mlm=False)
    keys = set(net.state_dict())
    assert not any(k.startswith(("classifier", "mlm_head", "cross_")) for k in keys)
    out = net(torch.randn(2, 3, 64, 32), captions(2), captions(2))
    assert set(out) == {"image_feats", "text_feats", "logit_scale"}


def test_unknown_names_and_fields():
    with pytest.raises(ValueError, match="irra_vit_b16"):
        build_t2i_model("clip", num_classes=3)
    with pytest.raises(ValueError, match="not_a_field"):
        build_t2i_model("vit_tiny", num_classes=3, not_a_field=1)
    with pytest.raises(ValueError, match="torchreid model"):
        build_t2i_model("not_a_backbone_text", num_classes=3)


# ------------------------------------------------------------------ forward semantics


def test_forward_shapes_and_features(tiny):
    images, tokens = torch.randn(3, 3, 64, 32), captions()
    with torch.no_grad():
        out = tiny(images, tokens, captions(seed=1))
        assert out["image_feats"].shape == out["text_feats"].shape == (3, 64)
        assert out["image_logits"].shape == out["text_logits"].shape == (3, 5)
        assert out["mlm_logits"].shape == (3, 32, VOCAB)
        torch.testing.assert_close(out["image_feats"], tiny.encode_image(images))
        torch.testing.assert_close(out["text_feats"], tiny.encode_text(tokens))
        torch.testing.assert_close(out["image_logits"], tiny.classifier(out["image_feats"]))
    assert "mlm_logits" not in tiny(images, tokens)


def test_text_feature_is_the_eot_token_and_causal(tiny):
    tokens = captions()
    with torch.no_grad():
        all_tokens = tiny.base_model.encode_text(tokens)
        eot = tokens.argmax(-1)
        torch.testing.assert_close(tiny.encode_text(tokens), all_tokens[torch.arange(3), eot])
        changed = tokens.clone()
        changed[:, -1] = 7  # a token after every eot: causal, so nothing before it moves
        torch.testing.assert_close(tiny.encode_text(changed), tiny.encode_text(tokens))
        changed[0, 1] = (tokens[0, 1] % (VOCAB - 4)) + 1  # a word before the eot does move it
        assert not torch.allclose(tiny.encode_text(changed)[0], tiny.encode_text(tokens)[0])
    mask = causal_mask(4)
    assert torch.isinf(mask[0, 1]) and mask[1, 0] == 0 and mask.diagonal().eq(0).all()


def test_image_feature_is_the_cls_token_and_unnormalised(tiny):
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        tokens = tiny.base_model.encode_image(images)
        assert tokens.shape == (2, 1 + 8 * 4, 64)
        torch.testing.assert_close(tiny.encode_image(images), tokens[:, 0])
    norms = tiny.encode_image(images).norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms))
    with pytest.raises(ValueError, match="64x32"):
        tiny.encode_image(torch.randn(1, 3, 32, 32))


def test_mlm_reads_the_image(tiny):
    images, tokens = torch.randn(2, 3, 64, 32), captions(2)
    with torch.no_grad():
        a = tiny(images, tokens, tokens)["mlm_logits"]
        b = tiny(images.flip(0), tokens, tokens)["mlm_logits"]
    assert not torch.allclose(a, b)


def test_cnn_preset_gives_tokens_and_gradients():
    torch.manual_seed(0)
    net = build_t2i_model("osnet_x0_25_text", num_classes=4, vocab_size=VOCAB,
                          context_length=32)
    images = torch.randn(2, 3, 64, 32)
    tokens = net.base_model.encode_image(images)
    assert tokens.shape == (2, 1 + 4 * 2, 128)  # CLS + the 4x2 OSNet map
    out = net(images, captions(2), captions(2, seed=3))
    loss = sum(v.sum() for k, v in out.items() if k != "logit_scale")
    loss.backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    assert not unused, unused[:5]
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


# ------------------------------------------------------------------ loading and protection


def test_fp16_irra_checkpoint_loads_with_every_key(tiny, tmp_path):
    source = build_t2i_model("vit_tiny", num_classes=5, vocab_size=VOCAB)
    half = {k: v.half() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    path = tmp_path / "best.pth"
    torch.save({"model": half, "optimizer": {}, "epoch": 3}, path)
    target = build_t2i_model("vit_tiny", num_classes=5, vocab_size=VOCAB)
    load_weights(target, path, allow_missing=())
    for key, value in target.state_dict().items():
        assert value.dtype == torch.float32, key
        torch.testing.assert_close(value, half[key].float(), msg=key)
    broken = dict(half)
    broken.pop("mlm_head.fc.bias")
    torch.save({"model": broken}, path)
    with pytest.raises(ValueError, match="mlm_head.fc.bias"):
        load_weights(target, path, allow_missing=())


def test_encoders_for_protection(tiny):
    images = torch.rand(2, 3, 64, 32)
    f = AuthorizedModel(image_encoder(tiny), mean=CLIP_MEAN, std=CLIP_STD, freeze=False)
    expected = tiny.encode_image(f.normalize(images))
    torch.testing.assert_close(f(images), expected)
    tokens = captions(2)
    torch.testing.assert_close(text_encoder(tiny)(tokens), tiny.encode_text(tokens))
