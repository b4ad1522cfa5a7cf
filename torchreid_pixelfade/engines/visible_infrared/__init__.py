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

- :mod:`.task`: protection of the infrared test images and evaluation from the stored PNGs
  (O2O, O2P, P2O per trial and averaged, privacy); :mod:`.engine`: the torchreid ``Engine``
  subclass that trains the two-stream model.

Not built yet: the ``data.type visible_infrared`` config node and commands (protect / evaluate /
report / demo), and the configs.
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

# Protection and evaluation of the VI scenario (task.py itself never imports torchreid).
from .task import (
    VIEvaluationResult,
    combine_trials,
    evaluate_original,
    evaluate_vi,
    infrared_identity,
    infrared_model,
    infrared_test_records,
    protect_infrared,
    visible_model,
    visible_test_records,
)

__all__ += [
    "VIEvaluationResult",
    "combine_trials",
    "evaluate_original",
    "evaluate_vi",
    "infrared_identity",
    "infrared_model",
    "infrared_test_records",
    "protect_infrared",
    "visible_model",
    "visible_test_records",
]

#: Training names, loaded on first use: :mod:`.engine` imports torchreid.
_ENGINE_NAMES = ("VIEngine", "VIDataManager", "build_vi_datamanager", "build_vi_engine",
                 "agw_optimizer", "agw_scheduler")


def __getattr__(name: str):
    """The training names of :mod:`.engine`, imported lazily (it loads torchreid)."""
    if name in _ENGINE_NAMES:
        from . import engine
        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
