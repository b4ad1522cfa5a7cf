"""Two-stream networks for visible-infrared Re-ID and the encoders PixelFade protects with.

:class:`AGWTwoStream` is AGW's cross-modal network (Ye et al., TPAMI 2021, the ``embed_net`` of
mangye16/Cross-Modal-Re-ID-baseline), written anew with the same module and parameter names, so
an official checkpoint loads with ``net.load_state_dict(torch.load(path)["net"])``:

- ``visible_module.visible`` / ``thermal_module.thermal``: two ResNets of which only the stem
  (conv1, bn1, ReLU, max-pool) runs. The official code keeps the whole ResNet in each (its layers
  1-4 are never used), so they are kept here too: without them a strict load fails.
- ``base_resnet.base``: the shared ResNet whose layers 1-4 run, last stride 1.
- ``NL_1`` ... ``NL_4``: non-local blocks after the last 0, 2, 3, 0 blocks of layers 1-4.
- generalised-mean pooling with a fixed p = 3, ``bottleneck`` (BNNeck, bias frozen) and a
  bias-free ``classifier``.

:class:`BackboneTwoStream` is the same wiring around a torchreid backbone (e.g. ``osnet_x0_25``),
for CPU-sized experiments. Both share the forward of :class:`TwoStreamNet`; ``modal`` is
:data:`BOTH` (0, both stems, batches concatenated visible first), :data:`VISIBLE` (1) or
:data:`THERMAL` (2), as in the official code.

:func:`thermal_encoder` and :func:`visible_encoder` expose one path as a ``(B, 3, H, W) -> (B, D)``
module for :class:`~torchreid_pixelfade.models.AuthorizedModel`.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ...models import build_reid_model, eval_mode

#: ``modal`` codes of :meth:`TwoStreamNet.forward`, as in the official ``embed_net.forward``.
BOTH, VISIBLE, THERMAL = 0, 1, 2
#: Non-local blocks per ResNet stage in AGW (after the last 2 blocks of layer2, 3 of layer3).
AGW_NON_LOCAL = (0, 2, 3, 0)
#: Children of a torchreid backbone that belong to its head, not to the trunk.
HEAD_NAMES = ("global_avgpool", "avgpool", "fc", "classifier")
RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
FEATURES = ("bn", "pool")


def gem_pool(x: torch.Tensor, p: float = 3.0, eps: float = 1e-12) -> torch.Tensor:
    """Generalised-mean pooling with a fixed exponent, ``(mean(x^p) + eps)^(1/p)``.

    Args:
        x: ``(B, C, H, W)`` feature maps, non-negative (a ReLU output); negative values are
            clamped to 0 (a no-op for ReLU outputs) so the root stays real.
        p: the exponent (AGW uses 3; 1 is average pooling).
        eps: added before the root, as AGW does.

    Returns:
        ``(B, C)`` pooled features, >= 0.
    """
    return (x.clamp(min=0).flatten(2).pow(p).mean(dim=-1) + eps).pow(1.0 / p)


class NonLocal(nn.Module):
    """Non-local block with dot-product affinity divided by the number of positions.

    ``z = x + W(y)``, ``y = (theta(x)^T phi(x) / N) g(x)``, with ``W`` a 1x1 conv followed by a
    BatchNorm whose weight and bias start at 0, so the block is the identity at initialisation.
    Parameter names (``g.0``, ``theta``, ``phi``, ``W.0``, ``W.1``) follow AGW.

    Args:
        in_channels: channels C of the input.
        inter_channels: channels of theta/phi/g. AGW's code computes 1 (``reduc_ratio //
            reduc_ratio``), and its checkpoints carry that shape; ``C // 2`` is the usual choice.

    Shape:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, in_channels: int, inter_channels: int = 1) -> None:
        super().__init__()
        self.inter_channels = inter_channels
        self.g = nn.Sequential(nn.Conv2d(in_channels, inter_channels, kernel_size=1))
        self.W = nn.Sequential(nn.Conv2d(inter_channels, in_channels, kernel_size=1),
                               nn.BatchNorm2d(in_channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)
        self.theta = nn.Conv2d(in_channels, inter_channels, kernel_size=1)
        self.phi = nn.Conv2d(in_channels, inter_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, N, C')
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, C')
        phi = self.phi(x).flatten(2)  # (B, C', N)
        affinity = theta @ phi
        y = (affinity / affinity.shape[-1]) @ g  # (B, N, C')
        return x + self.W(y.transpose(1, 2).reshape(b, self.inter_channels, h, w))

    def extra_repr(self) -> str:
        return f"inter_channels={self.inter_channels}"


class TwoStreamNet(nn.Module):
    """Base class: modality-specific stems, a shared trunk, pooling and a BNNeck head.

    Subclasses register ``visible_module`` and ``thermal_module`` (the stems), implement
    :meth:`trunk`, and call :meth:`_init_head` last. The head follows AGW: ``bottleneck`` is a
    ``BatchNorm1d`` (weight ~ N(1, 0.01), bias 0 and frozen) and ``classifier`` a bias-free
    ``Linear`` (weight ~ N(0, 0.001)).

    Forward ``(x_visible, x_thermal, modal)``:

    - training: ``(x_pool, logits)``, the pooled pre-BN feature ``(B', D)`` (for the triplet
      loss) and ``(B', num_classes)`` logits of the BNNeck feature;
    - eval: ``(l2norm(x_pool), l2norm(bn_feature))``, both ``(B', D)``, as the official code.

    ``B'`` is the visible plus the thermal batch for ``modal=BOTH`` (visible rows first), else
    the one batch used.
    """

    feature_dim: int
    gem: bool

    def _init_head(self, feature_dim: int, num_classes: int, gem: bool) -> None:
        self.feature_dim = feature_dim
        self.gem = gem
        self.bottleneck = nn.BatchNorm1d(feature_dim)
        nn.init.normal_(self.bottleneck.weight, 1.0, 0.01)
        nn.init.zeros_(self.bottleneck.bias)
        self.bottleneck.bias.requires_grad_(False)
        self.classifier = nn.Linear(feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, 0.0, 0.001)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Shared layers: stem output ``(B, C, H, W)`` -> final maps ``(B, D, h, w)``."""
        raise NotImplementedError

    def stem(self, x_visible: torch.Tensor | None, x_thermal: torch.Tensor | None,
             modal: int = BOTH) -> torch.Tensor:
        """Runs the stem(s) selected by ``modal`` on normalised ``(B, 3, H, W)`` images.

        Raises:
            ValueError: for an unknown ``modal`` or a missing input it needs.
        """
        if modal not in (BOTH, VISIBLE, THERMAL):
            raise ValueError(f"modal must be {BOTH} (both), {VISIBLE} (visible) or "
                             f"{THERMAL} (thermal), got {modal!r}")
        needed = {BOTH: ("x_visible", "x_thermal"), VISIBLE: ("x_visible",),
                  THERMAL: ("x_thermal",)}[modal]
        given = {"x_visible": x_visible, "x_thermal": x_thermal}
        missing = [name for name in needed if given[name] is None]
        if missing:
            raise ValueError(f"modal={modal} needs {' and '.join(missing)}")
        if modal == VISIBLE:
            return self.visible_module(x_visible)
        if modal == THERMAL:
            return self.thermal_module(x_thermal)
        return torch.cat((self.visible_module(x_visible), self.thermal_module(x_thermal)), 0)

    def pool(self, maps: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)`` -> ``(B, D)``: GeM (p = 3) or average pooling."""
        return gem_pool(maps) if self.gem else maps.mean(dim=(2, 3))

    def pooled(self, x_visible: torch.Tensor | None, x_thermal: torch.Tensor | None,
               modal: int = BOTH) -> torch.Tensor:
        """The pooled pre-BN feature ``(B', D)`` (``x_pool`` of the official code)."""
        return self.pool(self.trunk(self.stem(x_visible, x_thermal, modal)))

    def features(self, images: torch.Tensor, modal: int, feature: str = "bn",
                 normalize: bool = False) -> torch.Tensor:
        """Features of one modality's normalised images, in the current train/eval mode.

        Args:
            images: ``(B, 3, H, W)`` images normalised with the model's mean/std.
            modal: :data:`VISIBLE` or :data:`THERMAL`.
            feature: ``"bn"`` for the BNNeck output (the retrieval feature), ``"pool"`` for
                its input, the pooled feature.
            normalize: L2-normalise the features (as the official eval output does).

        Returns:
            ``(B, D)`` features.

        Raises:
            ValueError: for ``modal=BOTH`` or an unknown ``feature``.
        """
        if modal not in (VISIBLE, THERMAL):
            raise ValueError(f"features() takes one modality, {VISIBLE} or {THERMAL}; "
                             f"got {modal!r}")
        if feature not in FEATURES:
            raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
        x = self.pooled(images, images, modal)
        if feature == "bn":
            x = self.bottleneck(x)
        return F.normalize(x, dim=1) if normalize else x

    def forward(self, x_visible: torch.Tensor | None, x_thermal: torch.Tensor | None = None,
                modal: int = BOTH) -> tuple[torch.Tensor, torch.Tensor]:
        x_pool = self.pooled(x_visible, x_thermal, modal)
        feat = self.bottleneck(x_pool)
        if self.training:
            return x_pool, self.classifier(feat)
        return F.normalize(x_pool, dim=1), F.normalize(feat, dim=1)


# ------------------------------------------------------------------ AGW (ResNet)


def resnet_last_stride1(arch: str = "resnet50") -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet with layer4's stride set to 1 and no ``fc``.

    torchvision names its parameters as AGW's ``resnet.py`` does (``conv1``, ``bn1``,
    ``layerN.M.convK``, ``downsample.0/1``); ``fc`` becomes an ``nn.Identity`` (no parameters),
    as AGW's ResNet has none. Nothing is downloaded.

    Raises:
        ValueError: for an ``arch`` not in :data:`RESNET_ARCHS`.
    """
    if arch not in RESNET_ARCHS:
        raise ValueError(f"Unknown arch {arch!r}; choose one of {RESNET_ARCHS}")
    net = getattr(torchvision.models, arch)(weights=None)
    for module in net.layer4[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)
    net.fc = nn.Identity()
    return net


def stage_channels(net: torchvision.models.ResNet) -> list[int]:
    """Output channels of layer1-4 of a torchvision ResNet (``[256, 512, 1024, 2048]`` for 50)."""
    return [[m for m in getattr(net, f"layer{i}")[-1].modules()
             if isinstance(m, nn.BatchNorm2d)][-1].num_features for i in range(1, 5)]


class ResNetStem(nn.Module):
    """Holds a whole ResNet under ``name`` (AGW's key layout) and runs only its stem.

    Shape:
        ``(B, 3, H, W) -> (B, 64, H/4, W/4)`` (rounded up).
    """

    def __init__(self, name: str, arch: str = "resnet50") -> None:
        super().__init__()
        self.name = name
        self.add_module(name, resnet_last_stride1(arch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = getattr(self, self.name)
        return net.maxpool(net.relu(net.bn1(net.conv1(x))))


class SharedResNet(nn.Module):
    """Holds the shared ResNet as ``base`` (AGW's ``base_resnet.base``); runs layers 1-4."""

    def __init__(self, arch: str = "resnet50") -> None:
        super().__init__()
        self.base = resnet_last_stride1(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 5):
            x = getattr(self.base, f"layer{i}")(x)
        return x


class AGWTwoStream(TwoStreamNet):
    """AGW's two-stream network for VI-ReID with the official module and parameter names.

    Args:
        num_classes: training identities (the classifier's outputs).
        arch: the torchvision ResNet of stems and trunk (AGW: ``"resnet50"``, D = 2048).
        non_local: insert non-local blocks (``NL_1``..``NL_4``); AGW's ``no_local='on'``.
        gem: GeM pooling with p = 3 (AGW's ``gm_pool='on'``), else average pooling.
        non_local_counts: blocks per stage, placed after that many last blocks of the stage
            (at most one per block: ResNet-18/34 get 2 in layer3).
        non_local_inter: channels inside each non-local block; 1 as in AGW's checkpoints.

    Shape:
        See :class:`TwoStreamNet`; a 288x144 input gives 18x9 final maps (last stride 1).

    Example:
        >>> net = AGWTwoStream(num_classes=395)  # doctest: +SKIP
        >>> state = torch.load("sysu_agw_p4_n8_lr_0.1_seed_0_best.t")["net"]  # doctest: +SKIP
        >>> net.load_state_dict(state)  # doctest: +SKIP
    """

    def __init__(self, num_classes: int, arch: str = "resnet50", non_local: bool = True,
                 gem: bool = True, non_local_counts: Sequence[int] = AGW_NON_LOCAL,
                 non_local_inter: int = 1) -> None:
        super().__init__()
        self.thermal_module = ResNetStem("thermal", arch)
        self.visible_module = ResNetStem("visible", arch)
        self.base_resnet = SharedResNet(arch)
        self.non_local = non_local
        if non_local:
            base = self.base_resnet.base
            for stage, (count, width) in enumerate(zip(non_local_counts, stage_channels(base)),
                                                   start=1):
                count = min(count, len(getattr(base, f"layer{stage}")))  # ResNet-18/34
                blocks = [NonLocal(width, non_local_inter) for _ in range(count)]
                setattr(self, f"NL_{stage}", nn.ModuleList(blocks))
        self._init_head(stage_channels(self.base_resnet.base)[-1], num_classes, gem)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        if not self.non_local:
            return self.base_resnet(x)
        for stage in range(1, 5):
            blocks = getattr(self.base_resnet.base, f"layer{stage}")
            extra = getattr(self, f"NL_{stage}")
            first = len(blocks) - len(extra)  # non-local blocks follow the last blocks
            for i, block in enumerate(blocks):
                x = block(x)
                if i >= first:
                    x = extra[i - first](x)
        return x


# ------------------------------------------------------------------ torchreid backbones


def split_backbone(backbone: nn.Module, stem: Sequence[str] | None = None,
                   trunk: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """Names of the children of ``backbone`` that form the stem and the shared trunk.

    Children are taken in registration order, which is the forward order of torchreid's
    ResNets, OSNets and MobileNetV2 (tests check this against ``featuremaps``).

    Args:
        backbone: a torchreid model.
        stem: the stem's children; default: the leading children up to ``maxpool`` inclusive
            (``conv1, bn1, relu, maxpool`` for ResNets, ``conv1, maxpool`` for OSNet).
        trunk: the trunk's children; default: those after the stem up to the first head child
            (:data:`HEAD_NAMES`).

    Raises:
        ValueError: for unknown names, or no default stem (the message lists the children).
    """
    names = [name for name, _ in backbone.named_children()]
    unknown = [name for name in [*(stem or ()), *(trunk or ())] if name not in names]
    if unknown:
        raise ValueError(f"{type(backbone).__name__} has no children {unknown}; it has {names}")
    if stem is None:
        if "maxpool" not in names:
            raise ValueError(f"{type(backbone).__name__} has no 'maxpool' child to end the "
                             f"default stem; pass stem=[...] from its children {names}")
        stem = names[:names.index("maxpool") + 1]
    if trunk is None:
        rest = names[names.index(stem[-1]) + 1:]
        ends = [i for i, name in enumerate(rest) if name in HEAD_NAMES]
        trunk = rest[:ends[0]] if ends else rest
    return list(stem), list(trunk)


class BackboneTwoStream(TwoStreamNet):
    """AGW's two-stream wiring around a torchreid backbone, for CPU-sized models.

    Two copies of the backbone's stem (the visible one is the backbone's own modules, the
    thermal one a deep copy, so both start from the same weights, as AGW's two ImageNet stems
    do), the rest of its feature layers shared, then GeM and a BNNeck. The backbone's own head
    (pooling, ``fc``, classifier) is dropped.

    Args:
        backbone: a torchreid model (e.g. ``build_reid_model("osnet_x0_25")``); its modules
            are taken over, so do not use it on its own afterwards.
        num_classes: training identities.
        stem, trunk: children names, see :func:`split_backbone`.
        non_local: trunk children after which to insert a :class:`NonLocal` block with
            ``C // 2`` inner channels.
        gem: GeM pooling (p = 3), else average pooling.
        probe_size: ``(H, W)`` of the dry run that measures channel counts.

    Attributes:
        trunk_module: the shared ``nn.Sequential`` trunk.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, stem: Sequence[str] | None = None,
                 trunk: Sequence[str] | None = None, non_local: Sequence[str] = (),
                 gem: bool = True, probe_size: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        stem, trunk = split_backbone(backbone, stem, trunk)
        unknown = sorted(set(non_local) - set(trunk))
        if unknown:
            raise ValueError(f"non_local names {unknown} are not trunk children {trunk}")
        self.visible_module = nn.Sequential(OrderedDict(
            (name, getattr(backbone, name)) for name in stem))
        self.thermal_module = copy.deepcopy(self.visible_module)
        layers = OrderedDict((name, getattr(backbone, name)) for name in trunk)
        channels = _output_channels(self.visible_module, layers, probe_size)
        self.trunk_module = nn.Sequential(_with_non_local(layers, channels, non_local))
        self._init_head(channels[trunk[-1]], num_classes, gem)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk_module(x)


def _output_channels(stem: nn.Module, layers: dict, size: tuple[int, int]) -> dict[str, int]:
    """Channels after each trunk layer, measured by a dry run in eval mode."""
    modules = nn.ModuleList([stem, *layers.values()])
    channels = {}
    with torch.no_grad(), eval_mode(modules):
        x = stem(torch.zeros(1, 3, *size))
        for name, layer in layers.items():
            x = layer(x)
            channels[name] = x.shape[1]
    return channels


def _with_non_local(layers: dict, channels: dict, after: Sequence[str]) -> OrderedDict:
    result = OrderedDict()
    for name, layer in layers.items():
        result[name] = layer
        if name in after:
            result[f"{name}_non_local"] = NonLocal(channels[name], max(1, channels[name] // 2))
    return result


def build_vi_model(name: str, num_classes: int, **kwargs) -> TwoStreamNet:
    """Builds a two-stream model by name, with random weights (never downloads).

    Args:
        name: ``"agw"`` (AGW, ResNet-50), ``"agw_<resnet arch>"`` (e.g. ``"agw_resnet18"``), or
            a torchreid model name (e.g. ``"osnet_x0_25"``) for :class:`BackboneTwoStream`.
        num_classes: training identities.
        **kwargs: passed to :class:`AGWTwoStream` or :class:`BackboneTwoStream`.

    Raises:
        ValueError: for an unknown name.
    """
    if name == "agw" or name.startswith("agw_"):
        return AGWTwoStream(num_classes, arch=name[4:] or "resnet50", **kwargs)
    return BackboneTwoStream(build_reid_model(name, num_classes=num_classes), num_classes,
                             **kwargs)


# ------------------------------------------------------------------ encoders for protection


class ModalityEncoder(nn.Module):
    """One path of a two-stream net as a ``(B, 3, H, W) -> (B, D)`` feature extractor.

    The default feature is the **un-normalised BNNeck output** (``bottleneck(x_pool)``, before
    the L2 normalisation of the official eval output). This is the point PixelFade constrains:
    the official PixelFade bounds ``mean((f(x') - f(x))^2) < eps`` on AGW's raw BNNeck feature.
    On L2-normalised features the per-dimension MSE of any two unit vectors is at most
    ``4 / D`` (0.002 for D = 2048), so a bound like eps = 0.03 would always hold and PixelFade
    would degenerate into pure pixel replacement. Retrieval still ranks by the normalised
    features; normalising does not change which directions the constraint keeps.

    Args:
        net: the two-stream network (its modules are shared, not copied).
        modal: :data:`THERMAL` or :data:`VISIBLE`.
        feature: ``"bn"`` (default) or ``"pool"`` (the pre-BN pooled feature).
        normalize: L2-normalise (the official retrieval feature; not for the constraint).

    Shape:
        ``(B, 3, H, W)`` images normalised with the model's mean/std -> ``(B, D)``, D the
        net's ``feature_dim``. Runs in the caller's train/eval mode; wrap it in
        :class:`~torchreid_pixelfade.models.AuthorizedModel`, which runs it in eval mode on
        pixel images in [0, 1] (pass ``freeze=False`` there to protect with a net still being
        trained, or its parameters are frozen).
    """

    def __init__(self, net: TwoStreamNet, modal: int, feature: str = "bn",
                 normalize: bool = False) -> None:
        super().__init__()
        if modal not in (VISIBLE, THERMAL) or feature not in FEATURES:
            raise ValueError(f"need modal in ({VISIBLE}, {THERMAL}) and feature in {FEATURES}; "
                             f"got modal={modal!r}, feature={feature!r}")
        self.net = net
        self.modal = modal
        self.feature = feature
        self.normalize = normalize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(images, self.modal, self.feature, self.normalize)

    def extra_repr(self) -> str:
        path = "thermal" if self.modal == THERMAL else "visible"
        return f"path={path}, feature={self.feature!r}, normalize={self.normalize}"


def thermal_encoder(net: TwoStreamNet, feature: str = "bn") -> ModalityEncoder:
    """The thermal path (IR stem, shared trunk, BNNeck): the authorised ``f`` for IR images.

    Returns the un-normalised feature; see :class:`ModalityEncoder` for why.

    Example:
        >>> from torchreid_pixelfade.models import AuthorizedModel
        >>> net = build_vi_model("osnet_x0_25", num_classes=4)
        >>> AuthorizedModel(thermal_encoder(net))(torch.rand(2, 3, 64, 32)).shape
        torch.Size([2, 128])
    """
    return ModalityEncoder(net, THERMAL, feature)


def visible_encoder(net: TwoStreamNet, feature: str = "bn") -> ModalityEncoder:
    """The visible path (RGB stem, shared trunk, BNNeck), e.g. for RGB queries."""
    return ModalityEncoder(net, VISIBLE, feature)


__all__ = [
    "AGW_NON_LOCAL",
    "BOTH",
    "THERMAL",
    "VISIBLE",
    "AGWTwoStream",
    "BackboneTwoStream",
    "ModalityEncoder",
    "NonLocal",
    "ResNetStem",
    "SharedResNet",
    "TwoStreamNet",
    "build_vi_model",
    "gem_pool",
    "resnet_last_stride1",
    "split_backbone",
    "stage_channels",
    "thermal_encoder",
    "visible_encoder",
]
