"""IRRA-compatible dual encoder for text-to-image Re-ID, and the encoders PixelFade protects with.

:class:`DualEncoder` is IRRA's model (Jiang & Ye, CVPR 2023, anosorae/IRRA ``model/build.py`` and
``model/clip_model.py``), written anew with the same module and parameter names, so a released
checkpoint ``{'model': state_dict}`` (fp16 tensors) loads into the fp32 model with every key
matched (:func:`torchreid_pixelfade.models.load_weights` reads the ``model`` container; copying
into fp32 parameters casts the fp16 values):

- ``base_model``: CLIP. ``base_model.visual`` is a ViT (``conv1``, ``class_embedding``,
  ``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N``, ``ln_post``, ``proj``) on a
  non-square grid, ``num_y = (H - patch) // stride + 1`` by ``num_x = (W - patch) // stride + 1``
  (IRRA: 384x128, patch 16, stride 16 -> 24x8). The text side is ``token_embedding``,
  ``positional_embedding``, a causal ``transformer``, ``ln_final`` and ``text_projection``.
- ``classifier``: the identity head of the ID loss (on both modalities' features).
- ``cross_attn``, ``cross_modal_transformer``, ``ln_pre_t``, ``ln_pre_i``, ``ln_post`` and
  ``mlm_head.{dense, ln, fc}``: IRRA's implicit relation reasoning (masked language modelling).

IRRA keeps the temperature out of the state dict: its ``logit_scale = 1 / temperature`` (50) is a
plain attribute, and the CLIP ``logit_scale`` parameter is commented out of its ``CLIP``. Here it
is a non-persistent buffer, so the keys stay those of the checkpoints.

Features (IRRA ``encode_image`` / ``encode_text``): the image feature is the CLS token after
``ln_post`` and ``proj``; the text feature is the token at the end-of-text position
(``tokens.argmax(-1)``: eot has the largest id) after ``ln_final`` and ``text_projection``. Both
are **un-normalised**; retrieval ranks by their cosine similarity.

Presets (:func:`build_t2i_model`): ``irra_vit_b16`` (faithful: ViT-B/16, about 150M parameters;
needs a GPU to train), ``vit_tiny`` (a 64x32 ViT for tests) and ``<torchreid model>_text`` (e.g.
``osnet_x0_25_text``), a CPU-sized model whose image tower is a torchreid CNN: its spatial feature
map gives the image tokens and its average-pooled map the "CLS" feature, both through
``ln_post`` and ``proj`` (no pretrained weights are available offline; everything trains from
scratch).
"""
from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict

import torch
from torch import nn

from ...models import build_reid_model

logger = logging.getLogger(__name__)

#: CLIP's input normalisation (IRRA ``datasets/build.py``), in the order R, G, B.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: IRRA's vocabulary (CLIP BPE minus one merge, plus mask/sot/eot) and context length.
CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_LENGTH = 77
#: Children of a torchreid model that form its head (dropped from a CNN image tower).
HEAD_NAMES = ("global_avgpool", "avgpool", "fc", "classifier")
CNN_SUFFIX = "_text"


# ------------------------------------------------------------------ CLIP building blocks


class QuickGELU(nn.Module):
    """CLIP's activation, ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def causal_mask(length: int) -> torch.Tensor:
    """``(L, L)`` additive attention mask: 0 on and below the diagonal, ``-inf`` above it."""
    return torch.full((length, length), float("-inf")).triu_(1)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``.

    Parameter names follow CLIP: ``attn.{in_proj_weight, in_proj_bias, out_proj}``, ``ln_1``,
    ``mlp.{c_fc, c_proj}``, ``ln_2``.

    Args:
        width: Token width ``D``.
        heads: Attention heads (``D`` divisible by it).
        attn_mask: ``(L, L)`` additive mask (the text's causal mask) or None; kept as a
            non-persistent buffer, so it follows ``.to(device)`` but stays out of the state dict.

    Shape:
        ``(B, L, D) -> (B, L, D)``.
    """

    def __init__(self, width: int, heads: int, attn_mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, 4 * width)),
                                              ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(4 * width, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.register_buffer("attn_mask", attn_mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = None if self.attn_mask is None else self.attn_mask.to(x.dtype)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` under ``resblocks.N`` (CLIP's names).

    Shape:
        ``(B, L, width) -> (B, L, width)``.
    """

    def __init__(self, width: int, layers: int, heads: int,
                 attn_mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask)
                                         for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)

    def init_weights(self) -> None:
        """CLIP's initialisation of the attention and MLP weights (biases keep torch's)."""
        attn_std = self.width ** -0.5
        proj_std = attn_std * (2 * self.layers) ** -0.5
        fc_std = (2 * self.width) ** -0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)


def grid_size(image_size: tuple[int, int], patch_size: int, stride_size: int) -> tuple[int, int]:
    """``(num_y, num_x)`` patches of IRRA's strided ViT on an ``(H, W)`` image.

    Raises:
        ValueError: when the image is smaller than one patch or the stride is not positive.
    """
    height, width = image_size
    if stride_size < 1 or height < patch_size or width < patch_size:
        raise ValueError(f"image {height}x{width} needs at least one {patch_size}x{patch_size} "
                         f"patch and a positive stride (got {stride_size})")
    return (height - patch_size) // stride_size + 1, (width - patch_size) // stride_size + 1


class VisionTransformer(nn.Module):
    """CLIP's ViT with IRRA's non-square, strided patch grid.

    Args:
        image_size: ``(H, W)`` input size (fixes the positional embedding's length).
        patch_size: Patch side; ``stride_size``: step between patches (IRRA: both 16).
        width, layers, heads: Transformer size (ViT-B/16: 768, 12, 12).
        output_dim: Width ``D`` after ``proj`` (ViT-B/16: 512).

    Shape:
        ``(B, 3, H, W)`` normalised images -> ``(B, 1 + num_y * num_x, D)`` tokens after
        ``ln_post`` and ``proj``; token 0 is the CLS token.
    """

    def __init__(self, image_size: tuple[int, int], patch_size: int, stride_size: int,
                 width: int, layers: int, heads: int, output_dim: int) -> None:
        super().__init__()
        self.image_size = tuple(image_size)
        self.num_y, self.num_x = grid_size(self.image_size, patch_size, stride_size)
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=stride_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn(self.num_y * self.num_x + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(f"this ViT takes {self.image_size[0]}x{self.image_size[1]} images "
                             f"(its positional embedding is fixed), got {tuple(x.shape)}")
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, N, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype))
        return self.ln_post(self.transformer(x)) @ self.proj


class CNNVisual(nn.Module):
    """A torchreid CNN as an image tower with the ViT's output layout (CPU-sized models).

    The backbone's ``featuremaps`` give ``(B, C, h, w)``; the CLS token is the average-pooled
    map and the other tokens are the ``h * w`` positions, all through ``ln_post`` and
    ``proj`` (``C -> D``).

    Args:
        backbone: A torchreid model with a ``featuremaps`` method; its head (:data:`HEAD_NAMES`)
            is replaced by ``nn.Identity`` (unused, so it would receive no gradient).
        output_dim: Width ``D``.
        probe_size: ``(H, W)`` of the dry run that measures ``C``.

    Shape:
        ``(B, 3, H, W)`` normalised images -> ``(B, 1 + h * w, D)``.
    """

    def __init__(self, backbone: nn.Module, output_dim: int,
                 probe_size: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        if not callable(getattr(backbone, "featuremaps", None)):
            message = (f"{type(backbone).__name__} has no featuremaps() method; use a torchreid "
                       "model that has one (e.g. osnet_x0_25, resnet18)")
            raise ValueError(message)  # noqa: TRY004 (a bad model name, not a bad type)
        for name in HEAD_NAMES:
            if isinstance(getattr(backbone, name, None), nn.Module):
                setattr(backbone, name, nn.Identity())
        self.backbone = backbone
        channels = self._channels(probe_size)
        self.ln_post = nn.LayerNorm(channels)
        self.proj = nn.Parameter(channels ** -0.5 * torch.randn(channels, output_dim))

    def _channels(self, size: tuple[int, int]) -> int:
        training = self.backbone.training
        with torch.no_grad():
            channels = self.backbone.eval().featuremaps(torch.zeros(1, 3, *size)).shape[1]
        self.backbone.train(training)
        return channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.backbone.featuremaps(x)  # (B, C, h, w)
        tokens = torch.cat([maps.mean(dim=(2, 3)).unsqueeze(1), maps.flatten(2).transpose(1, 2)],
                           dim=1)
        return self.ln_post(tokens) @ self.proj


# ------------------------------------------------------------------ configuration


@dataclasses.dataclass(frozen=True)
class DualEncoderConfig:
    """Sizes of a :class:`DualEncoder` (field names follow IRRA's options where it has them).

    Attributes:
        num_classes: Training identities (the ``classifier``); 0 builds no classifier.
        vocab_size: Token ids ``V`` (IRRA 49408; a word tokenizer's ``vocab_size``).
        embed_dim: Joint feature width ``D``.
        image_size: ``(H, W)`` input size (fixed for a ViT; the data default for a CNN).
        vision: ``"vit"`` or a torchreid model name with ``featuremaps`` (:class:`CNNVisual`).
        patch_size, stride_size, vision_width, vision_layers, vision_heads: ViT sizes.
        context_length: Token positions ``L`` of the text encoder.
        text_width, text_layers, text_heads: Text transformer sizes.
        cmt_depth: Layers of the cross-modal transformer of MLM.
        mlm: Build the MLM modules (IRRA: when ``mlm`` is among the losses).
        temperature: SDM temperature; ``logit_scale = 1 / temperature`` (IRRA 0.02, fixed).
        mean, std: Input normalisation the model expects.
    """

    num_classes: int = 11003
    vocab_size: int = CLIP_VOCAB_SIZE
    embed_dim: int = 512
    image_size: tuple[int, int] = (384, 128)
    vision: str = "vit"
    patch_size: int = 16
    stride_size: int = 16
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    context_length: int = CLIP_CONTEXT_LENGTH
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    cmt_depth: int = 4
    mlm: bool = True
    temperature: float = 0.02
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    def __post_init__(self) -> None:
        if self.num_classes < 0 or self.vocab_size < 4 or self.context_length < 2:
            raise ValueError(f"need num_classes >= 0, vocab_size >= 4 and context_length >= 2; "
                             f"got {self.num_classes}, {self.vocab_size}, {self.context_length}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for width, heads, what in ((self.text_width, self.text_heads, "text"),
                                   (self.embed_dim, self.cross_heads, "cross-modal"),
                                   (self.vision_width, self.vision_heads, "vision")):
            if heads < 1 or width % heads:
                raise ValueError(f"{what} width {width} is not divisible by {heads} heads")

    @property
    def cross_heads(self) -> int:
        """Heads of the MLM cross attention and transformer (IRRA: ``embed_dim // 64``)."""
        return max(1, self.embed_dim // 64)


# ------------------------------------------------------------------ the model


class CLIP(nn.Module):
    """IRRA's ``base_model``: an image tower and CLIP's causal text transformer.

    ``encode_image``: ``(B, 3, H, W) -> (B, 1 + N, D)`` tokens (CLS first);
    ``encode_text``: ``(B, L) -> (B, L, D)`` tokens after ``ln_final`` and ``text_projection``.
    """

    def __init__(self, config: DualEncoderConfig) -> None:
        super().__init__()
        self.context_length = config.context_length
        self.visual = _build_visual(config)
        self.transformer = Transformer(config.text_width, config.text_layers, config.text_heads,
                                       causal_mask(config.context_length))
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        self.positional_embedding = nn.Parameter(
            torch.empty(config.context_length, config.text_width))
        self.ln_final = nn.LayerNorm(config.text_width)
        self.text_projection = nn.Parameter(torch.empty(config.text_width, config.embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=config.text_width ** -0.5)
        self.transformer.init_weights()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] != self.context_length:
            raise ValueError(f"expected (B, {self.context_length}) token ids, got "
                             f"{tuple(tokens.shape)}")
        x = self.token_embedding(tokens) + self.positional_embedding
        return self.ln_final(self.transformer(x)) @ self.text_projection


def _build_visual(config: DualEncoderConfig) -> nn.Module:
    if config.vision == "vit":
        return VisionTransformer(config.image_size, config.patch_size, config.stride_size,
                                 config.vision_width, config.vision_layers, config.vision_heads,
                                 config.embed_dim)
    return CNNVisual(build_reid_model(config.vision, num_classes=1), config.embed_dim)


def eot_pool(text_tokens: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The feature at each caption's end-of-text position, ``tokens.argmax(-1)``.

    Args:
        text_tokens: ``(B, L, D)`` encoder outputs.
        tokens: ``(B, L)`` ids; eot is the largest id of the vocabulary.

    Returns:
        ``(B, D)``.
    """
    return text_tokens[torch.arange(len(tokens), device=tokens.device), tokens.argmax(dim=-1)]


class DualEncoder(nn.Module):
    """IRRA: CLIP dual encoder, ID classifier and MLM head, with IRRA's parameter names.

    Args:
        config: Sizes (:class:`DualEncoderConfig`; presets in :func:`build_t2i_model`).

    Attributes:
        logit_scale: Non-persistent scalar buffer ``1 / temperature``.
        mean, std: The input normalisation (tuples; CLIP's for every preset).
    """

    def __init__(self, config: DualEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.mean, self.std = tuple(config.mean), tuple(config.std)
        self.base_model = CLIP(config)
        self.embed_dim = config.embed_dim
        self.register_buffer("logit_scale", torch.tensor(1.0 / config.temperature),
                             persistent=False)
        if config.num_classes > 0:
            self.classifier = nn.Linear(config.embed_dim, config.num_classes)
            nn.init.normal_(self.classifier.weight, std=0.001)
            nn.init.zeros_(self.classifier.bias)
        if config.mlm:
            self._build_mlm(config)

    def _build_mlm(self, config: DualEncoderConfig) -> None:
        """IRRA's cross-modal MLM modules and their initialisation."""
        dim, heads = config.embed_dim, config.cross_heads
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_modal_transformer = Transformer(dim, config.cmt_depth, heads)
        self.ln_pre_t, self.ln_pre_i, self.ln_post = (nn.LayerNorm(dim) for _ in range(3))
        self.mlm_head = nn.Sequential(OrderedDict([
            ("dense", nn.Linear(dim, dim)), ("gelu", QuickGELU()), ("ln", nn.LayerNorm(dim)),
            ("fc", nn.Linear(dim, config.vocab_size))]))
        self.cross_modal_transformer.init_weights()
        attn_std = dim ** -0.5
        proj_std = attn_std * (2 * max(1, config.cmt_depth)) ** -0.5
        nn.init.normal_(self.cross_attn.in_proj_weight, std=attn_std)
        nn.init.normal_(self.cross_attn.out_proj.weight, std=proj_std)
        nn.init.normal_(self.mlm_head.dense.weight, std=(2 * dim) ** -0.5)
        nn.init.normal_(self.mlm_head.fc.weight, std=proj_std)

    @property
    def has_classifier(self) -> bool:
        return hasattr(self, "classifier")

    @property
    def has_mlm(self) -> bool:
        return hasattr(self, "mlm_head")

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images -> ``(B, D)`` un-normalised CLS features."""
        return self.base_model.encode_image(images)[:, 0, :].float()

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` token ids -> ``(B, D)`` un-normalised end-of-text features."""
        return eot_pool(self.base_model.encode_text(tokens), tokens).float()

    def cross_former(self, text_tokens: torch.Tensor, image_tokens: torch.Tensor
                     ) -> torch.Tensor:
        """Text tokens attend to all image tokens, then the cross-modal transformer.

        Args:
            text_tokens: ``(B, L, D)`` encoded (masked) captions.
            image_tokens: ``(B, 1 + N, D)`` encoded images.

        Returns:
            ``(B, L, D)`` after ``ln_post``.
        """
        image_tokens = self.ln_pre_i(image_tokens)
        x = self.cross_attn(self.ln_pre_t(text_tokens), image_tokens, image_tokens,
                            need_weights=False)[0]
        return self.ln_post(self.cross_modal_transformer(x))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor,
                mlm_tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """IRRA's training forward.

        Args:
            images: ``(B, 3, H, W)`` normalised images.
            tokens: ``(B, L)`` caption ids of the same rows.
            mlm_tokens: ``(B, L)`` masked caption ids (:func:`~.losses.mask_tokens`), or None.

        Returns:
            ``image_feats``, ``text_feats`` ``(B, D)`` (un-normalised), ``logit_scale`` (scalar);
            ``image_logits``, ``text_logits`` ``(B, num_classes)`` when there is a classifier;
            ``mlm_logits`` ``(B, L, V)`` when ``mlm_tokens`` is given and MLM is built.
        """
        image_tokens = self.base_model.encode_image(images)
        out = {"image_feats": image_tokens[:, 0, :].float(),
               "text_feats": eot_pool(self.base_model.encode_text(tokens), tokens).float(),
               "logit_scale": self.logit_scale}
        if self.has_classifier:
            out["image_logits"] = self.classifier(out["image_feats"])
            out["text_logits"] = self.classifier(out["text_feats"])
        if mlm_tokens is not None and self.has_mlm:
            x = self.cross_former(self.base_model.encode_text(mlm_tokens), image_tokens)
            out["mlm_logits"] = self.mlm_head(x).float()
        return out

    def extra_repr(self) -> str:
        c = self.config
        return (f"vision={c.vision!r}, image_size={c.image_size}, embed_dim={c.embed_dim}, "
                f"vocab_size={c.vocab_size}, context_length={c.context_length}, "
                f"num_classes={c.num_classes}, mlm={c.mlm}, temperature={c.temperature}")


# ------------------------------------------------------------------ presets


PRESETS: dict[str, DualEncoderConfig] = {
    # IRRA: CLIP ViT-B/16 at 384x128, stride 16; text 512 x 12 layers x 8 heads, context 77.
    "irra_vit_b16": DualEncoderConfig(),
    # A ViT for tests: 64x32 images, 8x8 patches (8x4 grid), width 64, 2 + 2 layers.
    "vit_tiny": DualEncoderConfig(embed_dim=64, image_size=(64, 32), patch_size=8,
                                  stride_size=8, vision_width=64, vision_layers=2,
                                  vision_heads=2, context_length=32, text_width=64,
                                  text_layers=2, text_heads=2, cmt_depth=1),
}
#: The text and MLM sizes of ``<torchreid model>_text`` presets (image tower: the CNN).
CNN_TEXT = {"embed_dim": 128, "image_size": (128, 64), "context_length": 64, "text_width": 128,
            "text_layers": 2, "text_heads": 2, "cmt_depth": 1}


def t2i_model_names() -> list[str]:
    """The preset names; any torchreid model with ``featuremaps`` + ``_text`` works too."""
    return [*PRESETS, "osnet_x0_25_text"]


def build_t2i_model(name: str, num_classes: int, vocab_size: int = CLIP_VOCAB_SIZE,
                    **kwargs) -> DualEncoder:
    """Builds a :class:`DualEncoder` by preset name, with random weights (never downloads).

    Args:
        name: ``"irra_vit_b16"``, ``"vit_tiny"`` or ``"<torchreid model>_text"`` (e.g.
            ``"osnet_x0_25_text"``: that CNN as the image tower, a 2-layer width-128 text
            transformer, context 64).
        num_classes: Training identities (0: no classifier).
        vocab_size: The tokenizer's ``vocab_size`` (49408 for IRRA's CLIP BPE).
        **kwargs: Overrides of :class:`DualEncoderConfig` fields (e.g. ``context_length``,
            ``image_size``, ``mlm=False``).

    Raises:
        ValueError: For an unknown name (the message lists the presets) or an unknown field.
    """
    if name in PRESETS:
        base = PRESETS[name]
    elif name.endswith(CNN_SUFFIX) and len(name) > len(CNN_SUFFIX):
        base = DualEncoderConfig(vision=name[:-len(CNN_SUFFIX)], **CNN_TEXT)
    else:
        raise ValueError(f"unknown T2I model {name!r}; choose one of {list(PRESETS)} or "
                         f"'<torchreid model>{CNN_SUFFIX}' such as 'osnet_x0_25_text'")
    fields = {f.name for f in dataclasses.fields(DualEncoderConfig)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f"unknown DualEncoderConfig field(s) {unknown}; fields: {sorted(fields)}")
    config = dataclasses.replace(base, num_classes=num_classes, vocab_size=vocab_size, **kwargs)
    return DualEncoder(config)


# ------------------------------------------------------------------ encoders for protection


class ImageEncoder(nn.Module):
    """The image tower of a :class:`DualEncoder` as a ``(B, 3, H, W) -> (B, D)`` extractor.

    It returns the **un-normalised** CLS feature (IRRA ``encode_image``), the point PixelFade
    constrains (engines.md section 0): the official PixelFade bounds
    ``mean((f(x') - f(x))^2) < eps`` on the raw feature. On L2-normalised features the
    per-dimension MSE of two unit vectors is at most ``4 / D`` (0.008 for D = 512), so a bound
    such as eps = 0.03 would always hold and PixelFade would degenerate into pure pixel
    replacement. Retrieval ranks by cosine similarity, which is unchanged by the norm.

    Shape:
        ``(B, 3, H, W)`` images normalised with the model's mean/std -> ``(B, D)``. Wrap it in
        ``AuthorizedModel(image_encoder(net), mean=CLIP_MEAN, std=CLIP_STD)`` to protect pixel
        images in [0, 1]. The text encoder never runs during protection.
    """

    def __init__(self, net: DualEncoder) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.encode_image(images)


class TextEncoder(nn.Module):
    """The text tower of a :class:`DualEncoder`: ``(B, L)`` ids -> ``(B, D)`` un-normalised."""

    def __init__(self, net: DualEncoder) -> None:
        super().__init__()
        self.net = net

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net.encode_text(tokens)


def image_encoder(net: DualEncoder) -> ImageEncoder:
    """The authorised ``f`` of T2I protection (see :class:`ImageEncoder`).

    Example:
        >>> from torchreid_pixelfade.models import AuthorizedModel
        >>> net = build_t2i_model("vit_tiny", num_classes=4, vocab_size=50)
        >>> f = AuthorizedModel(image_encoder(net), mean=CLIP_MEAN, std=CLIP_STD)
        >>> f(torch.rand(2, 3, 64, 32)).shape
        torch.Size([2, 64])
    """
    return ImageEncoder(net)


def text_encoder(net: DualEncoder) -> TextEncoder:
    """The query side: caption ids -> un-normalised text features."""
    return TextEncoder(net)


__all__ = [
    "CLIP",
    "CLIP_CONTEXT_LENGTH",
    "CLIP_MEAN",
    "CLIP_STD",
    "CLIP_VOCAB_SIZE",
    "PRESETS",
    "CNNVisual",
    "DualEncoder",
    "DualEncoderConfig",
    "ImageEncoder",
    "QuickGELU",
    "ResidualAttentionBlock",
    "TextEncoder",
    "Transformer",
    "VisionTransformer",
    "build_t2i_model",
    "causal_mask",
    "eot_pool",
    "grid_size",
    "image_encoder",
    "t2i_model_names",
    "text_encoder",
]
