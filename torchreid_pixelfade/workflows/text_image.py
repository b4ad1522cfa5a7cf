"""The text-to-image scenario (``data.type text_image``) from a frozen config.

Datasets: ``cuhk_pedes``, ``icfg_pedes``, ``rstpreid`` under ``data.root``. The model is a dual
encoder (``model.name``: ``irra_vit_b16``, ``vit_tiny`` or ``<torchreid model>_text``); the
authorised model of protection is its image encoder's un-normalised feature, and the test gallery
is what is protected. Captions are tokenized with ``text_image.tokenizer``: CLIP's BPE with IRRA's
ids, or a word vocabulary rebuilt from the source's training captions (deterministic, so train,
protect and evaluate agree without a vocabulary file).
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch

from .. import config as C
from ..config.protection import fast_path_kwargs
from ..models import AuthorizedModel, load_weights
from .common import (check_data_root, check_or_warn, run_scenario_engine, single_dataset,
                     trained_weights)

logger = logging.getLogger(__name__)


def read_t2i(cfg, name: str):
    """The :class:`TextImageData` of ``name`` under ``data.root``."""
    from ..engines.text_image.datasets import read_t2i_dataset

    check_data_root(cfg.data.root)
    return read_t2i_dataset(name, cfg.data.root)


def t2i_tokenizer(cfg, source=None):
    """The tokenizer of ``text_image.tokenizer``; a word vocabulary is built from the training
    captions of ``source`` (default: read the single ``data.sources`` dataset)."""
    from ..engines.text_image.tokenizers import build_tokenizer

    if cfg.text_image.tokenizer != "word":
        return build_tokenizer(cfg.text_image.tokenizer)
    source = source or read_t2i(cfg, single_dataset(cfg.data.sources, "source"))
    return build_tokenizer("word", [row.caption for row in source.train])


def build_model(cfg, num_classes: int, vocab_size: int):
    """The dual encoder ``model.name`` sized for the tokenizer and ``text_image`` options."""
    from ..engines.text_image.model import build_t2i_model

    return build_t2i_model(cfg.model.name, num_classes, vocab_size,
                           image_size=(cfg.data.height, cfg.data.width),
                           context_length=cfg.text_image.context_length,
                           temperature=cfg.text_image.temperature,
                           mlm="mlm" in cfg.text_image.losses)


def t2i_models(cfg, weights: str, device: str | torch.device, fast_paths: bool = False):
    """``(authorised image model, text encoder, tokenizer)`` of ``model.name`` with
    ``weights``.

    Args:
        fast_paths: run the image model with ``pixelfade.channels_last``, ``.precision`` and
            ``.compile`` (``'auto'`` resolved for ``device``) as protection does; off, plain
            float32 features as evaluation computes them.
    """
    from ..engines.text_image.model import image_encoder, text_encoder

    tokenizer = t2i_tokenizer(cfg)
    net = load_weights(build_model(cfg, 1, tokenizer.vocab_size), weights).to(device).eval()
    options = fast_path_kwargs(cfg, device) if fast_paths else {}
    image = AuthorizedModel(image_encoder(net), cfg.data.norm_mean, cfg.data.norm_std,
                            name=f"{cfg.model.name}/image", **options)
    return image, text_encoder(net), tokenizer


def gallery(cfg) -> tuple[str, list, object]:
    """``(dataset folder, gallery records, test split)`` of the single target."""
    from ..engines.text_image.task import gallery_records

    data = read_t2i(cfg, single_dataset(cfg.data.targets, "target"))
    return data.dataset_dir, gallery_records(data.test), data.test


def gallery_records_of(cfg, splits: Sequence[str] = ("query", "gallery")) -> tuple[str, list]:
    """``(dataset folder, records)`` protection stores: the test gallery for ``query`` /
    ``gallery``, the source's training images for ``train`` (an attacker's pairs)."""
    splits = set(splits)
    if splits == {"train"}:
        data = read_t2i(cfg, single_dataset(cfg.data.sources, "source"))
        return data.dataset_dir, list(data.train_images)
    if not splits or not splits <= {"query", "gallery"}:
        raise ValueError(f"data.type text_image protects the test gallery (query, gallery) or "
                         f"the training images (train), not {sorted(splits)}")
    root, records, _ = gallery(cfg)
    return root, records


def evaluate_t2i_folder(cfg, weights: str, folder, device: str | torch.device = "cpu",
                        allow_other_weights: bool = False):
    """T2O and T2P of ``folder`` (the protected test gallery), refusing a folder made with
    another model unless ``allow_other_weights``."""
    from ..engines.text_image.task import evaluate_t2i

    image, text, tokenizer = t2i_models(cfg, weights, device)
    check_or_warn(folder, image.name, weights, allow_other_weights)
    _, _, split = gallery(cfg)
    return evaluate_t2i(image, text, tokenizer, folder, split, batch_size=cfg.test.batch_size,
                        device=device, context_length=cfg.text_image.context_length,
                        dataset=cfg.data.targets[0])


def build_t2i_training(cfg, device: str | torch.device = "cpu"):
    """The :class:`T2IEngine` of ``cfg``: the source's caption rows, the dual encoder with one
    class per training identity, IRRA's optimiser and schedule from ``train.*``."""
    from ..engines.text_image.engine import build_t2i_datamanager, build_t2i_engine

    source = read_t2i(cfg, single_dataset(cfg.data.sources, "source"))
    target = single_dataset(cfg.data.targets, "target")
    test = source if target == source.name else read_t2i(cfg, target)
    tokenizer = t2i_tokenizer(cfg, source)
    options = C.t2i_training_kwargs(cfg)
    manager = build_t2i_datamanager(source, tokenizer, cfg.data.height, cfg.data.width,
                                    **options["data"])
    manager.test_split = test.test
    model = build_model(cfg, manager.num_train_pids, tokenizer.vocab_size).to(device)
    if cfg.model.load_weights:
        load_weights(model, cfg.model.load_weights)
    return build_t2i_engine(manager, model, **options["engine"])


def run_t2i(cfg, device: str | torch.device = "cpu"):
    """Trains (testing T2O on the target's test split), or only tests with ``test.evaluate``;
    protection is a separate step (``protect``, then ``evaluate``)."""
    return run_scenario_engine(cfg, build_t2i_training(cfg, device), "the test gallery")


def train_t2i(cfg, device: str | torch.device = "cpu") -> str:
    """Trains the dual encoder of ``cfg``; returns the path of the saved ``model.pth``."""
    return trained_weights(cfg, run_t2i(cfg, device))
