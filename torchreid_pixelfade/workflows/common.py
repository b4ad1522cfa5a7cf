"""What every scenario's workflow shares: the device, the run folder, the data root, the
model-and-weights check of evaluation and resuming a training checkpoint."""
from __future__ import annotations

import logging
import os

import torch

from ..io import atomic_write_bytes
from ..models import load_weights
from ..store import ProtectedFolder

logger = logging.getLogger(__name__)


def default_device() -> str:
    """``'cuda'`` when a GPU is visible, else ``'cpu'``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def prepare_run(cfg) -> str:
    """Writes the resolved ``cfg`` to ``data.save_dir/config.yaml`` and seeds Python, numpy and
    torch with ``train.seed`` (torchreid's ``set_random_seed``); returns the config's path."""
    from .._torchreid import tr

    path = os.path.join(cfg.data.save_dir, "config.yaml")
    atomic_write_bytes(path, cfg.dump().encode())
    tr.utils.set_random_seed(cfg.train.seed)
    return path


def check_data_root(root: str) -> None:
    """Raises ``FileNotFoundError`` naming ``root`` unless it is a folder."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data root {root!r} is not a folder (set --root or data.root)")


def single_dataset(names, what: str) -> str:
    """The one name in ``names`` (``data.sources`` or ``data.targets``).

    Raises:
        ValueError: naming ``what`` (source, target) when there is not exactly one.
    """
    if len(names) != 1:
        raise ValueError(f"Expected one {what} dataset, got {list(names)}")
    return names[0]


def check_same_model(folder: ProtectedFolder, model_name: str, weights: str) -> None:
    """Refuses to evaluate ``folder`` with another model or other weights than it was made with
    (its features would not be the authorised ones, and the results would describe neither).

    Raises:
        ValueError: naming both models or both weight hashes.
    """
    from ..store import file_sha256

    recorded = folder.identity
    if recorded.model != model_name:
        raise ValueError(f"{folder.path} was protected with model {recorded.model!r}, not "
                         f"{model_name!r}; evaluate with its model (or pass "
                         f"--allow-other-weights to compare on purpose)")
    digest = file_sha256(weights)
    if recorded.weights_sha256 and recorded.weights_sha256 != digest:
        raise ValueError(f"{folder.path} was protected with other weights (sha256 "
                         f"{recorded.weights_sha256[:12]}...) than {weights} ({digest[:12]}...); "
                         f"evaluate with its weights (or pass --allow-other-weights)")


def check_or_warn(folder: ProtectedFolder, model_name: str, weights: str,
                   allow_other_weights: bool) -> None:
    if allow_other_weights:
        logger.warning("evaluating %s with %s (%s), which may differ from the model it was "
                       "protected with (%s)", folder.path, model_name, weights,
                       folder.identity.model)
    else:
        check_same_model(folder, model_name, weights)


def resume_training(engine, path: str) -> int:
    """Loads a torchreid checkpoint (model, optimizer, epoch); returns the epoch to start at."""
    from ..models import read_checkpoint

    checkpoint = read_checkpoint(path)
    load_weights(engine.model, path)
    if checkpoint.get("optimizer"):
        engine.optimizer.load_state_dict(checkpoint["optimizer"])
    logger.info("resumed %s at epoch %d", path, checkpoint.get("epoch", 0))
    return int(checkpoint.get("epoch", 0))




def run_scenario_engine(cfg, engine, what: str):
    """``engine.run`` with ``cfg``'s options (resuming ``model.resume``) for a scenario whose
    protection is a separate step; ``what`` names what ``protect`` stores (for the error).

    Raises:
        ValueError: with ``pixelfade.enabled``, the image engine's per-batch hook.
    """
    from .. import config as C

    if cfg.pixelfade.enabled:
        raise ValueError(f"data.type {cfg.data.type}: pixelfade.enabled applies to the image "
                         f"engine; protect {what} with `protect`, then `evaluate`")
    run_kwargs = C.engine_run_kwargs(cfg)
    if cfg.model.resume:
        run_kwargs["start_epoch"] = resume_training(engine, cfg.model.resume)
    engine.run(**run_kwargs)
    return engine


def trained_weights(cfg, engine) -> str:
    """The ``model.pth`` the engine saved in ``data.save_dir`` (the last epoch when no test
    ran to save one); logged with the best Rank-1."""
    path = os.path.join(cfg.data.save_dir, engine.weights_name)
    if not os.path.isfile(path):
        engine.save_model(engine.epoch, 0.0, cfg.data.save_dir)
    logger.info("best Rank-1 %.4f; weights: %s", engine.best_rank1, path)
    return path
