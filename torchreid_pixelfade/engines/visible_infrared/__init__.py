"""Visible-infrared (VI) Re-ID engine: SYSU-MM01 and RegDB, RGB queries against protected IR.

- :mod:`.datasets`: pure SYSU-MM01 / RegDB readers and their torchreid datasets
  (:func:`~.datasets.register_vi_datasets`; nothing is registered at import).
- :mod:`.protocol`: the official SYSU-MM01 (gallery trials, identity-unique CMC, cam-3/cam-2 rule)
  and RegDB protocols, both directions, averaged over trials.
- :mod:`.model`: AGW's two-stream network (loads the AGW authors' ``{'net': ...}`` checkpoints),
  the same wiring around any torchreid backbone, and the un-normalised modality encoders that
  :class:`~torchreid_pixelfade.models.AuthorizedModel` wraps for protection.
- :mod:`.sampler`, :mod:`.losses`: the paired identity sampler, cross-entropy and AGW's
  weighted-regularisation triplet.

Not built yet: the torchreid ``Engine`` subclass, the ``data.type visible_infrared`` workflows
(protect / evaluate / report / demo) and their configs.
"""
from __future__ import annotations

from .datasets import (
    RegDBData,
    SysuMM01Data,
    SysuTestSet,
    VIRecord,
    read_regdb,
    read_sysu_mm01,
    register_vi_datasets,
)

__all__ = [
    "VIRecord",
    "SysuTestSet",
    "SysuMM01Data",
    "RegDBData",
    "read_sysu_mm01",
    "read_regdb",
    "register_vi_datasets",
]
