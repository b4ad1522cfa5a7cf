"""Training the authorised model with torchreid's own engines.

The only change to torchreid's training is how models are saved: instead of torchreid checkpoints
(which torch >= 2.6 cannot load back without allow-listing numpy types), the engine keeps one plain
state dict, ``model.pth``, of the model with the best Rank-1 seen so far.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from ..._torchreid import tr
from ...training import SaveBestMixin

logger = logging.getLogger(__name__)


def engine_class(loss: str) -> type:
    """The torchreid engine for ``loss`` ('softmax' or 'triplet') with :class:`SaveBestMixin`."""
    engines = {"softmax": tr.engine.ImageSoftmaxEngine, "triplet": tr.engine.ImageTripletEngine}
    if loss not in engines:
        raise ValueError(f"Unknown loss {loss!r}; choose one of {sorted(engines)}")
    return type(f"SaveBest{engines[loss].__name__}", (SaveBestMixin, engines[loss]), {})


def with_warmup(scheduler: torch.optim.lr_scheduler.LRScheduler, optimizer: torch.optim.Optimizer,
                warmup_epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Prepends a linear warm-up of ``warmup_epochs`` epochs (from 1/(warmup+1) of the lr)."""
    if warmup_epochs <= 0:
        return scheduler
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup_epochs + 1),
                                               total_iters=warmup_epochs)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, scheduler],
                                                 milestones=[warmup_epochs])


def build_training(datamanager, model_name: str, loss: str, optimizer_kwargs: dict,
                   scheduler_kwargs: dict, warmup_epochs: int = 0, pretrained: bool = False,
                   loss_kwargs: dict | None = None, device: str | torch.device = "cpu"):
    """Builds model, optimizer, scheduler and a saving engine for ``datamanager``.

    ``device`` is where the model is put; torchreid's engine then moves batches with its own
    ``use_gpu`` flag, which is derived from it here.

    Returns:
        The torchreid engine; call ``engine.run(**engine_run_kwargs)``.
    """
    use_gpu = torch.device(device).type == "cuda"
    model: nn.Module = tr.models.build_model(model_name, num_classes=datamanager.num_train_pids,
                                             loss=loss, pretrained=pretrained, use_gpu=use_gpu)
    model = model.to(device)
    optimizer = tr.optim.build_optimizer(model, **optimizer_kwargs)
    scheduler = tr.optim.build_lr_scheduler(optimizer, **scheduler_kwargs)
    scheduler = with_warmup(scheduler, optimizer, warmup_epochs)
    return engine_class(loss)(datamanager, model, optimizer, scheduler=scheduler, use_gpu=use_gpu,
                              **(loss_kwargs or {}))
