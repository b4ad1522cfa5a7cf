"""Training the two-stream VI model with a torchreid ``Engine``: AGW's recipe.

Each batch comes from :class:`~.sampler.PairedIdentitySampler`: P identities x (K visible + K
thermal) images, visible half first, with the same labels in the same order. The net runs with
``modal=0`` (both stems, batches concatenated) and the loss is AGW's identity cross-entropy
(optionally label-smoothed) plus the weighted-regularised triplet on the pooled feature.

torchreid's ``Engine.run`` is used unchanged (its epoch loop, LR stepping, periodic and final
evaluation, TensorBoard writer). Two methods are replaced because they are image-specific:

- ``forward_backward``: the paired VI batch (see above);
- ``test``: torchreid's ``test`` ranks a query loader against a gallery loader with
  Market-style rules; VI needs the official protocols (SYSU gallery trials and same-room
  removal, RegDB trials), so ``test`` computes O2O with
  :func:`~.task.evaluate_original` (no protection) and returns the Rank-1 of the first direction
  (a fraction in [0, 1]) for ``save_model``.

``save_model`` has the semantics of the image engine's ``SaveBestMixin``
(``engines/image/training.py``): one plain state dict, ``model.pth``, of the best model by that
Rank-1, written atomically (torchreid's checkpoints hold numpy scalars that torch >= 2.6 refuses
to load). It is written here rather than imported because no engine imports another
(``engines/__init__``); moving the mixin to a shared module would let both use one.

The data manager is a small duck-typed object (:class:`VIDataManager`) with what ``Engine`` reads
(``train_loader``, ``test_loader``, ``sources``) plus the VI test set.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from ..._torchreid import tr
from ...training import EpochLossMixin, SaveBestMixin
from ...constants import IMAGENET_MEAN, IMAGENET_STD
from ...io import read_image
from .datasets import VIRecord
from .losses import cross_entropy_loss, wrt_triplet_loss
from .model import BOTH, THERMAL, VISIBLE, TwoStreamNet
from .sampler import PairedIdentitySampler, modality_code
from .task import TestSet, evaluate_original, infrared_model, visible_model

logger = logging.getLogger(__name__)

#: The file :meth:`VIEngine.save_model` writes in ``save_dir``.
WEIGHTS_NAME = SaveBestMixin.weights_name
#: AGW's schedule: linear warm-up over 10 epochs, x0.1 from epoch 20, x0.01 from epoch 50.
AGW_WARMUP, AGW_MILESTONES = 10, (20, 50)


# ------------------------------------------------------------------ data


def train_transform(height: int, width: int, pad: int = 10, flip: bool = True,
                    mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> T.Compose:
    """AGW's training augmentation: resize, pad + random crop, random flip, normalise.

    Returns:
        PIL image -> ``(3, height, width)`` normalised tensor.
    """
    steps = [T.Resize((height, width))]
    if pad > 0:
        steps += [T.Pad(pad), T.RandomCrop((height, width))]
    if flip:
        steps.append(T.RandomHorizontalFlip())
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


class VITrainDataset(Dataset):
    """VI training records as items ``{"img", "pid", "camid", "modal", "impath"}``.

    Args:
        records: both modalities' training records.
        transform: PIL image -> tensor.
        relabel: map the pids to ``0 .. P-1`` in increasing pid order (for cross-entropy).

    Attributes:
        labels: the (relabelled) pid of each index; ``modals``: its modal code (1 visible,
            2 thermal).
    """

    def __init__(self, records: Sequence[VIRecord], transform, relabel: bool = True) -> None:
        self.records = list(records)
        if not self.records:
            raise ValueError("no training records")
        self.transform = transform
        label = {pid: i for i, pid in enumerate(sorted({r.pid for r in self.records}))}
        self.labels = [label[r.pid] if relabel else r.pid for r in self.records]
        self.modals = [modality_code(r.modality) for r in self.records]
        self.num_pids = len(label)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        return {"img": self.transform(read_image(record.path)), "pid": self.labels[index],
                "camid": record.camid, "modal": self.modals[index], "impath": record.path}


@dataclasses.dataclass
class VIDataManager:
    """What torchreid's ``Engine`` reads from a data manager, plus the VI test set.

    Attributes:
        train_loader: batches of the paired sampler (``2 * P * K`` items, visible half first).
        test_set: the SYSU test set or RegDB trial evaluated by :meth:`VIEngine.test`.
        height, width: the model's input size (training and test).
        num_train_pids: training identities (the classifier's outputs).
        sources: ``[name]``; ``targets`` the same.
        mean, std: the input normalisation of training (and so of evaluation).
        test_loader: empty: VI evaluation reads ``test_set`` (see :meth:`VIEngine.test`).
    """

    train_loader: DataLoader
    test_set: TestSet
    height: int
    width: int
    num_train_pids: int
    sources: list
    targets: list
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    test_loader: dict = dataclasses.field(default_factory=dict)
    data_type: str = "image"


def build_vi_datamanager(train_records: Sequence[VIRecord], test_set: TestSet, height: int,
                         width: int, num_ids: int = 8, num_pos: int = 4,
                         num_batches: int | None = None, workers: int = 0, seed: int = 0,
                         pad: int = 10, name: str = "vi",
                         mean: Sequence[float] = IMAGENET_MEAN,
                         std: Sequence[float] = IMAGENET_STD) -> VIDataManager:
    """The data manager of VI training.

    Args:
        train_records: training records of both modalities (``SysuMM01Data.train``,
            ``RegDBData.train``).
        test_set: ``SysuMM01Data.test`` or the ``RegDBData`` trial.
        height, width: input size (AGW 288x144).
        num_ids, num_pos: P identities x K images per modality per batch (AGW 8 x 4).
        num_batches: batches per epoch; default the sampler's (about one pass).
        workers: DataLoader workers.
        seed: the sampler's seed.
        pad: padding before the random crop (AGW 10; 0 disables the crop).
        name: dataset name (``sources``).
        mean, std: the model's input normalisation (ImageNet for AGW).
    """
    dataset = VITrainDataset(train_records, train_transform(height, width, pad, True, mean, std))
    sampler = PairedIdentitySampler(dataset.labels, dataset.modals, num_ids, num_pos,
                                    num_batches, seed)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                        pin_memory=torch.cuda.is_available())
    return VIDataManager(loader, test_set, height, width, dataset.num_pids, [name], [name],
                         tuple(mean), tuple(std))


# ------------------------------------------------------------------ optimisation


def agw_optimizer(model: TwoStreamNet, lr: float = 0.1, weight_decay: float = 5e-4,
                  momentum: float = 0.9) -> torch.optim.SGD:
    """AGW's SGD: the backbone at ``0.1 * lr``, BNNeck and classifier at ``lr``; nesterov.

    Frozen parameters (the BNNeck bias) are left out.
    """
    head = [p for m in (model.bottleneck, model.classifier) for p in m.parameters()
            if p.requires_grad]
    ids = {id(p) for m in (model.bottleneck, model.classifier) for p in m.parameters()}
    base = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    return torch.optim.SGD([{"params": base, "lr": 0.1 * lr}, {"params": head, "lr": lr}],
                           lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=True)


def agw_scheduler(optimizer: torch.optim.Optimizer, warmup: int = AGW_WARMUP,
                  milestones: Sequence[int] = AGW_MILESTONES
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    """AGW's per-epoch factor: ``(e + 1) / warmup`` during warm-up, then 1, 0.1, 0.01 at the
    milestones (stepped once per epoch by ``Engine.train``)."""
    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / warmup
        return 0.1 ** sum(epoch >= m for m in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ------------------------------------------------------------------ the engine


def split_paired_batch(images: torch.Tensor, labels: torch.Tensor, modals: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(visible, thermal)`` halves of a paired batch, checking the sampler's layout.

    Args:
        images: ``(2N, 3, H, W)``; labels, modals: ``(2N,)``.

    Raises:
        ValueError: unless the first half is visible, the second thermal, with equal labels.
    """
    half = len(images) // 2
    if (len(images) % 2 or not bool((modals[:half] == VISIBLE).all())
            or not bool((modals[half:] == THERMAL).all())
            or not torch.equal(labels[:half], labels[half:])):
        raise ValueError("expected a PairedIdentitySampler batch: visible half, then thermal "
                         "half with the same labels")
    return images[:half], images[half:]


class VIEngine(SaveBestMixin, EpochLossMixin, tr.engine.Engine):
    """torchreid ``Engine`` training a two-stream VI net with AGW's losses.

    Args:
        datamanager: :func:`build_vi_datamanager`.
        model: the two-stream net (on its device).
        optimizer: e.g. :func:`agw_optimizer`.
        scheduler: e.g. :func:`agw_scheduler` (stepped per epoch), or None.
        use_gpu: move batches to CUDA (when available).
        label_smoothing: cross-entropy epsilon in [0, 1) (AGW: 0).
        triplet_weight: weight of the WRT loss (AGW: 1).
        directions: evaluated by :meth:`test`; default the dataset's (SYSU both, RegDB
            visible -> thermal); the first one's O2O Rank-1 selects the best model.
        trials, shot, mode: the SYSU protocol of :meth:`test` (trials default 0..9).
        batch_size_test: images per feature batch in :meth:`test` (which normalises with the
            data manager's ``mean``/``std``, as training does).

    Attributes:
        best_rank1: the best Rank-1 saved so far (``-inf`` before the first save).
        epoch_losses: mean total loss of each finished epoch.
        last_results: ``{"O2O:<direction>": TrialSummary}`` of the last :meth:`test`.
    """

    def __init__(self, datamanager: VIDataManager, model: TwoStreamNet,
                 optimizer: torch.optim.Optimizer, scheduler=None, use_gpu: bool = True,
                 label_smoothing: float = 0.0, triplet_weight: float = 1.0,
                 directions: Sequence[str] | None = None, trials: Sequence[int] | None = None,
                 shot: str = "single", mode: str | None = None,
                 batch_size_test: int = 128) -> None:
        super().__init__(datamanager, use_gpu)
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.register_model("model", model, optimizer, scheduler)
        self.label_smoothing, self.triplet_weight = label_smoothing, triplet_weight
        self.eval_options = {"directions": directions, "trials": trials, "shot": shot,
                             "mode": mode, "batch_size": batch_size_test}
        self.epoch_losses: list[float] = []
        self.last_results: dict = {}
        self._batch_losses: list[float] = []

    def two_stepped_transfer_learning(self, epoch, fixbase_epoch, open_layers, model=None):
        """torchreid's, then re-freezes the BNNeck bias that its ``open_all_layers`` opens."""
        super().two_stepped_transfer_learning(epoch, fixbase_epoch, open_layers, model)
        self.model.bottleneck.bias.requires_grad_(False)

    def forward_backward(self, data: dict) -> dict:
        """One step on a paired batch; returns the loss terms and the batch accuracy."""
        labels = data["pid"].to(self.device)
        visible, thermal = split_paired_batch(data["img"], data["pid"], data["modal"])
        x_pool, logits = self.model(visible.to(self.device), thermal.to(self.device), BOTH)
        ce = cross_entropy_loss(logits, labels, self.label_smoothing)
        wrt = wrt_triplet_loss(x_pool, labels)
        loss = ce + self.triplet_weight * wrt
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"epoch {self.epoch + 1}: the loss is {loss.item()}")
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self._batch_losses.append(loss.item())
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        return {"loss": loss.item(), "ce": ce.item(), "wrt": wrt.item(), "acc": accuracy}

    def test(self, dist_metric: str = "euclidean", normalize_feature: bool = False,
             visrank: bool = False, visrank_topk: int = 10, save_dir: str = "",
             use_metric_cuhk03: bool = False, ranks=(1, 5, 10, 20), rerank: bool = False
             ) -> float:
        """O2O on the VI protocol (no protection); the first direction's Rank-1 in [0, 1].

        torchreid's arguments are accepted for ``Engine.run`` and ignored: VI ranks with AGW's
        distance on L2-normalised BNNeck features under the official rules.
        """
        manager = self.datamanager
        with torch.no_grad():
            results = evaluate_original(
                visible_model(self.model, manager.mean, manager.std, freeze=False),
                infrared_model(self.model, manager.mean, manager.std, freeze=False),
                manager.test_set, manager.height, manager.width, device=self.device,
                **self.eval_options)
        self.last_results = results
        for key, summary in results.items():
            mean = summary.mean()
            logger.info("epoch %d, %s: Rank-1 %.4f, mAP %.4f, mINP %.4f", self.epoch + 1, key,
                        mean["rank1"], mean["mAP"], mean["mINP"])
            if self.writer is not None:
                for metric in ("rank1", "mAP", "mINP"):
                    self.writer.add_scalar(f"Test/{key}/{metric}", mean[metric], self.epoch)
        return next(iter(results.values())).mean()["rank1"]


def build_vi_engine(datamanager: VIDataManager, model: TwoStreamNet, lr: float = 0.1,
                    weight_decay: float = 5e-4, warmup: int = AGW_WARMUP,
                    milestones: Sequence[int] = AGW_MILESTONES, **engine_kwargs) -> VIEngine:
    """A :class:`VIEngine` with AGW's optimiser and schedule; ``engine.run(save_dir=...,
    max_epoch=...)`` trains and saves ``save_dir/model.pth``.

    Args:
        datamanager: :func:`build_vi_datamanager`.
        model: the two-stream net, already on its device.
        lr, weight_decay: AGW 0.1 and 5e-4.
        warmup, milestones: :func:`agw_scheduler`.
        **engine_kwargs: the other arguments of :class:`VIEngine`.
    """
    optimizer = agw_optimizer(model, lr, weight_decay)
    scheduler = agw_scheduler(optimizer, warmup, milestones)
    engine_kwargs.setdefault("use_gpu", next(model.parameters()).is_cuda)
    return VIEngine(datamanager, model, optimizer, scheduler, **engine_kwargs)


__all__ = [
    "AGW_MILESTONES",
    "AGW_WARMUP",
    "WEIGHTS_NAME",
    "VIDataManager",
    "VIEngine",
    "VITrainDataset",
    "agw_optimizer",
    "agw_scheduler",
    "build_vi_datamanager",
    "build_vi_engine",
    "split_paired_batch",
    "train_transform",
]
