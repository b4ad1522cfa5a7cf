"""What the package's torchreid engines (image, visible-infrared, text-to-image) share.

torchreid's ``Engine.run`` calls ``save_model(epoch, rank1, save_dir)`` after every evaluation
and ``train()`` once per epoch; these mixins replace torchreid's checkpoints by one plain state
dict of the best model (torch >= 2.6 cannot load torchreid's checkpoints back without
allow-listing numpy types) and record each epoch's mean loss.
"""
from __future__ import annotations

import logging
import math
import os

import numpy as np
import torch

from .io import atomic_torch_save

logger = logging.getLogger(__name__)


class SaveBestMixin:
    """Replaces torchreid's ``save_model`` by one plain state dict of the best model by Rank-1,
    ``save_dir/model.pth``, written atomically whenever Rank-1 is at least the best so far."""

    best_rank1: float = -math.inf
    weights_name = "model.pth"

    def save_model(self, epoch: int, rank1: float, save_dir: str, is_best: bool = False) -> None:
        rank1 = float(rank1)
        if rank1 < self.best_rank1:
            return
        self.best_rank1 = rank1
        path = os.path.join(save_dir, self.weights_name)
        atomic_torch_save(self.model.state_dict(), path)
        logger.info("epoch %d: Rank-1 %.4f, saved %s", epoch + 1, rank1, path)


class EpochLossMixin:
    """Records the mean loss of each epoch in ``epoch_losses`` (``forward_backward`` appends
    each batch's loss to ``_batch_losses``), and gives the model's ``device``."""

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return next(self.model.parameters()).device

    def train(self, *args, **kwargs) -> None:
        """torchreid's epoch, then the epoch's mean loss in :attr:`epoch_losses`."""
        self._batch_losses = []
        super().train(*args, **kwargs)
        self.epoch_losses.append(float(np.mean(self._batch_losses)))
        logger.info("epoch %d: loss %.4f", self.epoch + 1, self.epoch_losses[-1])
