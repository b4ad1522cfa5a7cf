"""One evaluation path: settings, ranking under a protocol, privacy, ``results.json``.

Every number comes from the images as stored: protected PNGs are read back from disk and their
features re-extracted; nothing is reused from the optimisation. The ``evaluate`` command
(:func:`evaluate_folder`) and the torchreid evaluation hook both rank with
:func:`evaluate_settings` and report through :func:`folder_result`.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..models import AuthorizedModel
from ..store import ProtectedFolder
from .features import extract_features, folder_side
from .results import EvaluationResult, folder_result, privacy_summary, results_markdown
from .retrieval import evaluate_settings, setting_distances
from .settings import (IMAGE_SETTINGS, O2O, O2P, P2O, P2P, SETTINGS, Setting, setting)


def evaluate_folder(model: AuthorizedModel, folder: ProtectedFolder | str,
                    metric: str = "euclidean", normalize: bool = False,
                    ranks: Sequence[int] = (1, 5, 10), rerank: bool = False,
                    batch_size: int = 128, device: str | torch.device = "cpu",
                    protocol="market") -> EvaluationResult:
    """Evaluates a protected folder against the original images it came from.

    Protected query and gallery are read back from their PNG files, originals from the source
    dataset named in the manifest, both at the stored image size; the four settings are ranked
    with torchreid's ``dist_metric``/``normalize_feature``/``rerank`` semantics. Results are
    labelled with ``model.name``, the model that extracted the features.

    Raises:
        FileNotFoundError: if the folder has no manifest. ValueError: if a side is empty.
    """
    folder = folder if isinstance(folder, ProtectedFolder) else ProtectedFolder.open(folder)
    sides = {split: folder_side(model, folder, split, batch_size, device)
             for split in ("query", "gallery")}
    settings = evaluate_settings(sides["query"]["features"], sides["gallery"]["features"],
                                 sides["query"]["labels"], sides["gallery"]["labels"],
                                 IMAGE_SETTINGS, metric, normalize, ranks, rerank, protocol)
    pairs = [(s["pixels"]["protected"], s["pixels"]["original"]) for s in sides.values()]
    return folder_result(folder, settings, len(sides["query"]["labels"][0]),
                         len(sides["gallery"]["labels"][0]), model.name, pairs=pairs)


__all__ = ["evaluate_folder", "extract_features", "folder_side", "EvaluationResult",
           "folder_result", "privacy_summary", "results_markdown", "evaluate_settings",
           "setting_distances", "IMAGE_SETTINGS", "O2O", "O2P", "P2O", "P2P", "SETTINGS",
           "Setting", "setting"]
