"""Training the IRRA dual encoder with a torchreid ``Engine``: IRRA's recipe.

Each training item is one caption of one image (IRRA's ``ImageTextMLMDataset``): the augmented
image, the caption's ids, a masked copy for MLM and its labels. The loss is IRRA's
``sdm + id + mlm`` (:mod:`.losses`; any subset, plus ``itc`` for ablations).

torchreid's ``Engine.run`` is used unchanged (epoch loop, LR stepping, evaluation, writer). Two
methods are replaced because they are image-specific:

- ``forward_backward``: the image-caption batch above;
- ``test``: text-to-image retrieval on the test split, as IRRA's ``Evaluator``: every caption is
  a query, every test image a gallery item, cosine similarity of L2-normalised features, and
  ranking with no camera or junk removal (:func:`evaluate_rank` with ``protocol="none"``). It
  returns the Rank-1 (a fraction in [0, 1]) for ``save_model``.

``save_model`` writes one plain state dict, ``save_dir/model.pth``, atomically, when the Rank-1
is at least the best so far (the semantics of the other engines; not imported, since no engine
imports another).

Randomness (shuffling, flips, crops and MLM masking) comes from seeded ``torch.Generator``s only.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..._torchreid import tr
from ...training import EpochLossMixin, SaveBestMixin
from ...io import load_image_tensor
from ...models import AuthorizedModel
from .datasets import CaptionRow, T2ISplit, TextImageData
from .losses import LOSS_NAMES, id_loss, itc_loss, mask_tokens, mlm_loss, sdm_loss
from .model import CLIP_MEAN, CLIP_STD, DualEncoder, image_encoder, text_encoder
from .task import evaluate_original

logger = logging.getLogger(__name__)

#: The file :meth:`T2IEngine.save_model` writes in ``save_dir``.
WEIGHTS_NAME = SaveBestMixin.weights_name
#: IRRA's losses (``--loss_names sdm+mlm+id``).
IRRA_LOSSES = ("sdm", "id", "mlm")


# ------------------------------------------------------------------ data


def augment(image: torch.Tensor, generator: torch.Generator, flip: bool = True, pad: int = 0
            ) -> torch.Tensor:
    """Random horizontal flip (p = 0.5), then zero padding and a random crop back to size.

    Args:
        image: ``(3, H, W)`` pixels in [0, 1].
        generator: The only source of randomness.
        flip: Flip with probability 0.5.
        pad: Pixels of zero padding on each side before the crop (0: no crop).

    Returns:
        ``(3, H, W)`` in [0, 1].
    """
    if flip and float(torch.rand((), generator=generator)) < 0.5:
        image = image.flip(-1)
    if pad > 0:
        _, height, width = image.shape
        top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
        image = F.pad(image, (pad, pad, pad, pad))[:, top:top + height, left:left + width]
    return image


def normalize_image(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]
                    ) -> torch.Tensor:
    """``(..., 3, H, W)`` pixels in [0, 1] -> the model's normalised input space."""
    mean_t = torch.tensor(mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image - mean_t) / std_t


class T2ITrainDataset(Dataset):
    """IRRA's training items: one per caption.

    Args:
        rows: ``TextImageData.train``.
        tokenizer: A tokenizer with IRRA's layout (``tokenizer(texts, context_length)``,
            ``mask_id``, ``ordinary_range``).
        height, width: Image size (resized as torchreid's test transform, bilinear).
        context_length: Token positions ``L``.
        mean, std: The model's normalisation.
        flip, pad: Augmentation (:func:`augment`; IRRA ``--img_aug``: flip, pad 10, crop).
        mask_probability: MLM selection probability (IRRA 0.15).
        seed: Seed of the dataset's generator (reseeded per DataLoader worker).

    Items:
        ``{"img": (3, H, W) float, "tokens", "mlm_tokens", "mlm_labels": (L,) int64,
        "pid": int, "image_id": int}``.
    """

    def __init__(self, rows: Sequence[CaptionRow], tokenizer, height: int, width: int,
                 context_length: int, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD, flip: bool = True, pad: int = 0,
                 mask_probability: float = 0.15, seed: int = 0) -> None:
        self.rows = list(rows)
        if not self.rows:
            raise ValueError("no training captions (TextImageData.train is empty)")
        self.tokenizer = tokenizer
        self.height, self.width, self.context_length = height, width, context_length
        self.mean, self.std = tuple(mean), tuple(std)
        self.flip, self.pad, self.mask_probability = flip, pad, mask_probability
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        image = load_image_tensor(row.path, self.height, self.width)
        image = augment(image, self.generator, self.flip, self.pad)
        tokens = self.tokenizer([row.caption], self.context_length)[0]
        masked, labels = mask_tokens(tokens, self.tokenizer.mask_id,
                                     self.tokenizer.ordinary_range, self.generator,
                                     self.mask_probability)
        return {"img": normalize_image(image, self.mean, self.std), "tokens": tokens,
                "mlm_tokens": masked, "mlm_labels": labels, "pid": row.pid,
                "image_id": row.image_id}


def _seed_worker(_: int) -> None:
    """Gives each DataLoader worker its own stream of the dataset's generator."""
    info = get_worker_info()
    info.dataset.generator.manual_seed(info.seed % 2 ** 63)


@dataclasses.dataclass
class T2IDataManager:
    """What torchreid's ``Engine`` reads from a data manager, plus the T2I test split.

    Attributes:
        train_loader: Batches of :class:`T2ITrainDataset` items.
        test_split: The split :meth:`T2IEngine.test` ranks (captions vs images).
        tokenizer: The captions' tokenizer; ``context_length`` its output length.
        height, width: The model's input size.
        num_train_pids: Training identities (the classifier's outputs).
        sources, targets: ``[dataset name]``.
        mean, std: The input normalisation of training and evaluation.
        test_loader: Empty: T2I evaluation reads ``test_split``.
    """

    train_loader: DataLoader
    test_split: T2ISplit
    tokenizer: object
    context_length: int
    height: int
    width: int
    num_train_pids: int
    sources: list
    targets: list
    mean: tuple = CLIP_MEAN
    std: tuple = CLIP_STD
    test_loader: dict = dataclasses.field(default_factory=dict)
    data_type: str = "image"


def build_t2i_datamanager(data: TextImageData, tokenizer, height: int, width: int,
                          batch_size: int = 64, context_length: int = 77, flip: bool = True,
                          pad: int = 0, mask_probability: float = 0.15, workers: int = 0,
                          seed: int = 0, mean: Sequence[float] = CLIP_MEAN,
                          std: Sequence[float] = CLIP_STD, split: str = "test"
                          ) -> T2IDataManager:
    """The data manager of T2I training.

    Args:
        data: A reader's output (:func:`~.datasets.read_t2i_dataset`).
        tokenizer: ``WordTokenizer`` / ``ClipBPETokenizer`` (its ``vocab_size`` sizes the model).
        height, width: Input size (IRRA 384x128).
        batch_size: Captions per batch (IRRA's script 64); the last partial batch is dropped
            when there is more than one batch.
        context_length: Token positions (IRRA 77; must equal the model's).
        flip, pad: Augmentation (IRRA ``--img_aug``: flip and pad 10 + random crop).
        mask_probability: MLM selection probability.
        workers: DataLoader workers.
        seed: Seed of the shuffling and of the augmentation/masking generator.
        mean, std: The model's normalisation (CLIP's).
        split: ``"test"`` or ``"val"``: the split :meth:`T2IEngine.test` evaluates.
    """
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    dataset = T2ITrainDataset(data.train, tokenizer, height, width, context_length, mean, std,
                              flip, pad, mask_probability, seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        drop_last=len(dataset) > batch_size,
                        generator=torch.Generator().manual_seed(seed),
                        worker_init_fn=_seed_worker if workers > 0 else None)
    return T2IDataManager(loader, getattr(data, split), tokenizer, context_length, height,
                          width, data.num_train_pids, [data.name], [data.name], tuple(mean),
                          tuple(std))


# ------------------------------------------------------------------ evaluation


# ------------------------------------------------------------------ optimisation


def irra_param_groups(model: torch.nn.Module, lr: float, weight_decay: float,
                      lr_factor: float = 5.0, bias_lr_factor: float = 2.0,
                      weight_decay_bias: float = 0.0) -> list[dict]:
    """IRRA's per-parameter rates (``solver/build.py``), grouped by equal settings.

    In IRRA's order of rules: names containing ``cross`` get ``lr * lr_factor``; then any
    ``bias`` gets ``lr * bias_lr_factor`` and ``weight_decay_bias``; then ``classifier`` and
    ``mlm_head`` parameters get ``lr * lr_factor`` (their biases keep no weight decay).
    """
    groups: dict[tuple[float, float], list] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        rate, decay = lr, weight_decay
        if "cross" in name:
            rate = lr * lr_factor
        if "bias" in name:
            rate, decay = lr * bias_lr_factor, weight_decay_bias
        if "classifier" in name or "mlm_head" in name:
            rate = lr * lr_factor
        groups.setdefault((rate, decay), []).append(parameter)
    return [{"params": params, "lr": rate, "weight_decay": decay}
            for (rate, decay), params in groups.items()]


def irra_optimizer(model: torch.nn.Module, lr: float = 1e-5, weight_decay: float = 4e-5,
                   lr_factor: float = 5.0, bias_lr_factor: float = 2.0,
                   weight_decay_bias: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-3) -> torch.optim.Adam:
    """IRRA's Adam: lr 1e-5, x5 for ``cross*``/``classifier``/``mlm_head``, biases x2 with no
    weight decay, betas (0.9, 0.999), eps 1e-3, weight decay 4e-5."""
    groups = irra_param_groups(model, lr, weight_decay, lr_factor, bias_lr_factor,
                               weight_decay_bias)
    return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps)


def irra_lr_factor(epoch: int, num_epochs: int, warmup_epochs: int = 5,
                   warmup_factor: float = 0.1) -> float:
    """IRRA's schedule (``solver/lr_scheduler.py``, cosine mode, linear warm-up) at ``epoch``.

    Warm-up: ``warmup_factor * (1 - a) + a`` with ``a = epoch / warmup_epochs``; then
    ``(1 + cos(pi * (epoch - warmup) / (num_epochs - warmup))) / 2`` (target lr 0).
    """
    if epoch < warmup_epochs:
        alpha = epoch / warmup_epochs
        return warmup_factor * (1 - alpha) + alpha
    ratio = (epoch - warmup_epochs) / max(1, num_epochs - warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * ratio))


def irra_scheduler(optimizer: torch.optim.Optimizer, num_epochs: int = 60,
                   warmup_epochs: int = 5, warmup_factor: float = 0.1
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`irra_lr_factor` as a per-epoch scheduler (``Engine.train`` steps it per epoch).

    Raises:
        ValueError: Unless ``0 <= warmup_epochs < num_epochs``.
    """
    if not 0 <= warmup_epochs < num_epochs:
        raise ValueError(f"need 0 <= warmup_epochs < num_epochs, got {warmup_epochs} and "
                         f"{num_epochs}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: irra_lr_factor(e, num_epochs, warmup_epochs, warmup_factor))


# ------------------------------------------------------------------ the engine


class T2IEngine(SaveBestMixin, EpochLossMixin, tr.engine.Engine):
    """torchreid ``Engine`` training a :class:`DualEncoder` with IRRA's losses.

    Args:
        datamanager: :func:`build_t2i_datamanager`.
        model: The dual encoder (on its device; batches follow it).
        optimizer: E.g. :func:`irra_optimizer`.
        scheduler: E.g. :func:`irra_scheduler` (stepped per epoch), or None.
        loss_names: Subset of ``("sdm", "id", "mlm", "itc")`` (IRRA: sdm, id, mlm).
        loss_weights: Optional ``{name: weight}`` (default 1 each, as IRRA).
        batch_size_test: Captions/images per feature batch in :meth:`test`.

    Attributes:
        best_rank1: Best Rank-1 saved so far (``-inf`` before the first save).
        epoch_losses: Mean total loss of each finished epoch.
        last_result: ``{"rank1", "rank5", "rank10", "mAP", "mINP"}`` of the last
            :meth:`test` (T2O).
    """

    def __init__(self, datamanager: T2IDataManager, model: DualEncoder,
                 optimizer: torch.optim.Optimizer, scheduler=None,
                 loss_names: Sequence[str] = IRRA_LOSSES,
                 loss_weights: dict[str, float] | None = None,
                 batch_size_test: int = 128) -> None:
        super().__init__(datamanager, use_gpu=next(model.parameters()).is_cuda)
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.register_model("model", model, optimizer, scheduler)
        self.loss_names = _check_losses(model, loss_names)
        _check_text_sizes(model, datamanager)
        self.loss_weights = {name: 1.0 for name in self.loss_names} | dict(loss_weights or {})
        self.batch_size_test = batch_size_test
        self.epoch_losses: list[float] = []
        self.last_result: dict | None = None
        self._batch_losses: list[float] = []

    def compute_losses(self, data: dict) -> dict[str, torch.Tensor]:
        """The selected loss terms of one batch (unweighted), keyed by loss name."""
        pids = data["pid"].to(self.device)
        mlm_tokens = data["mlm_tokens"].to(self.device) if "mlm" in self.loss_names else None
        out = self.model(data["img"].to(self.device), data["tokens"].to(self.device),
                         mlm_tokens)
        terms = {}
        if "sdm" in self.loss_names:
            terms["sdm"] = sdm_loss(out["image_feats"], out["text_feats"], pids,
                                    out["logit_scale"])
        if "itc" in self.loss_names:
            terms["itc"] = itc_loss(out["image_feats"], out["text_feats"], out["logit_scale"])
        if "id" in self.loss_names:
            terms["id"] = id_loss(out["image_logits"], out["text_logits"], pids)
        if "mlm" in self.loss_names:
            terms["mlm"] = mlm_loss(out["mlm_logits"], data["mlm_labels"].to(self.device))
        return terms

    def forward_backward(self, data: dict) -> dict:
        """One optimisation step; returns the total and each term as floats.

        Raises:
            FloatingPointError: When the loss is not finite (naming the epoch and the terms).
        """
        terms = self.compute_losses(data)
        loss = sum(self.loss_weights[name] * term for name, term in terms.items())
        if not math.isfinite(loss.item()):
            values = {name: term.item() for name, term in terms.items()}
            raise FloatingPointError(f"epoch {self.epoch + 1}: the loss is {loss.item()} "
                                     f"(terms {values})")
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self._batch_losses.append(loss.item())
        return {"loss": loss.item(), **{name: term.item() for name, term in terms.items()}}

    def test(self, dist_metric: str = "cosine", normalize_feature: bool = True,
             visrank: bool = False, visrank_topk: int = 10, save_dir: str = "",
             use_metric_cuhk03: bool = False, ranks=(1, 5, 10, 20), rerank: bool = False
             ) -> float:
        """T2O retrieval on the data manager's split; returns Rank-1 in [0, 1].

        torchreid's arguments are accepted for ``Engine.run`` and ignored: T2I ranks by cosine
        similarity with no camera or junk removal, as IRRA does.
        """
        manager = self.datamanager
        with torch.no_grad():
            result = evaluate_original(
                AuthorizedModel(image_encoder(self.model), manager.mean, manager.std,
                                freeze=False),
                text_encoder(self.model), manager.tokenizer, manager.test_split,
                manager.height, manager.width, self.batch_size_test, self.device,
                context_length=manager.context_length)["T2O"]
        self.last_result = result
        logger.info("epoch %d, T2O: Rank-1 %.4f, Rank-5 %.4f, mAP %.4f, mINP %.4f",
                    self.epoch + 1, result["rank1"], result["rank5"], result["mAP"],
                    result["mINP"])
        if self.writer is not None:
            for metric, value in result.items():
                self.writer.add_scalar(f"Test/T2O/{metric}", value, self.epoch)
        return result["rank1"]


def _check_losses(model: DualEncoder, loss_names: Sequence[str]) -> tuple[str, ...]:
    """Validated loss names; ``id`` needs the classifier and ``mlm`` the MLM modules."""
    names = tuple(loss_names)
    unknown = sorted(set(names) - set(LOSS_NAMES))
    if unknown or not names:
        raise ValueError(f"loss_names must be a non-empty subset of {LOSS_NAMES}, got {names}")
    if "id" in names and not model.has_classifier:
        raise ValueError("loss 'id' needs the model's classifier (build it with num_classes > 0)")
    if "mlm" in names and not model.has_mlm:
        raise ValueError("loss 'mlm' needs the model's MLM modules (build it with mlm=True)")
    return names


def _check_text_sizes(model: DualEncoder, manager: T2IDataManager) -> None:
    """The tokenizer's ids and length must fit the model's embedding and positions."""
    config = model.config
    vocab = getattr(manager.tokenizer, "vocab_size", config.vocab_size)
    if manager.context_length != config.context_length or vocab > config.vocab_size:
        raise ValueError(f"data manager: context_length {manager.context_length} and tokenizer "
                         f"vocab_size {vocab}; model: context_length {config.context_length} "
                         f"and vocab_size {config.vocab_size}; build them to agree")


def build_t2i_engine(datamanager: T2IDataManager, model: DualEncoder, lr: float = 1e-5,
                     weight_decay: float = 4e-5, num_epochs: int = 60, warmup_epochs: int = 5,
                     warmup_factor: float = 0.1, adam_eps: float = 1e-3,
                     **engine_kwargs) -> T2IEngine:
    """A :class:`T2IEngine` with IRRA's optimiser and schedule; ``engine.run(save_dir=...,
    max_epoch=num_epochs)`` trains and saves ``save_dir/model.pth``.

    Args:
        datamanager: :func:`build_t2i_datamanager`.
        model: The dual encoder, already on its device.
        lr, weight_decay: IRRA 1e-5 and 4e-5 (fine-tuning CLIP); a model trained from scratch
            needs a larger lr (e.g. 1e-3 for ``osnet_x0_25_text``).
        num_epochs, warmup_epochs, warmup_factor: :func:`irra_scheduler` (IRRA 60, 5, 0.1).
        adam_eps: Adam's epsilon (IRRA 1e-3).
        **engine_kwargs: The other arguments of :class:`T2IEngine`.
    """
    optimizer = irra_optimizer(model, lr, weight_decay, eps=adam_eps)
    scheduler = irra_scheduler(optimizer, num_epochs, warmup_epochs, warmup_factor)
    return T2IEngine(datamanager, model, optimizer, scheduler, **engine_kwargs)


__all__ = [
    "IRRA_LOSSES",
    "WEIGHTS_NAME",
    "T2IDataManager",
    "T2IEngine",
    "T2ITrainDataset",
    "augment",
    "build_t2i_datamanager",
    "build_t2i_engine",
    "irra_lr_factor",
    "irra_optimizer",
    "irra_param_groups",
    "irra_scheduler",
    "normalize_image",
]
