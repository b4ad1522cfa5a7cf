"""The T2I scenario: IRRA's text-to-image ranking, protection of gallery files only, and the
evaluation of a protected folder from its stored PNGs (tiny stand-in encoders)."""
from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchreid_pixelfade.data.synthetic.pedes import (
    SyntheticCuhkPedesConfig,
    make_synthetic_cuhk_pedes,
)
from torchreid_pixelfade.engines.text_image.datasets import read_cuhk_pedes
from torchreid_pixelfade.engines.text_image.task import (
    T2IEvaluationResult,
    caption_pids,
    evaluate_original,
    evaluate_t2i,
    gallery_records,
    protect_gallery,
    report_ranks,
    shuffled_pids,
    t2i_identity,
    t2i_rank,
    text_features,
)
from torchreid_pixelfade.engines.text_image.tokenizers import WordTokenizer
from torchreid_pixelfade.evaluation import EvaluationResult
from torchreid_pixelfade.evaluation.sides import path_features
from torchreid_pixelfade.protect.calibration import flip_calibrated_eps
from torchreid_pixelfade.io import load_images
from torchreid_pixelfade.models import AuthorizedModel
from torchreid_pixelfade.protect import build_protector
from torchreid_pixelfade.store import ProtectedFolder

HEIGHT, WIDTH = 64, 32
CONFIG = SyntheticCuhkPedesConfig(num_train_ids=2, num_val_ids=1, num_test_ids=4,
                                  images_per_id=2, captions_per_image=2, height=HEIGHT,
                                  width=WIDTH, seed=0)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT = 24
METRICS = {"rank1", "rank5", "rank10", "mAP", "mINP"}


# ------------------------------------------------------------------ the ranking


def irra_reference(similarity: np.ndarray, text_pids, image_pids, ranks) -> dict:
    """IRRA's ``rank`` as described: every caption ranks every image by similarity, no
    removal; CMC at k, AP = mean precision at the hits, INP = hits / rank of the last hit."""
    cmc, aps, inps = {k: [] for k in ranks}, [], []
    for row, pid in zip(similarity, text_pids):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        hits = [image_pids[j] == pid for j in order]
        first = hits.index(True)
        for k in ranks:
            cmc[k].append(1.0 if first < k else 0.0)
        precisions, found = [], 0
        for position, hit in enumerate(hits, 1):
            if hit:
                found += 1
                precisions.append(found / position)
        aps.append(sum(precisions) / found)
        last = max(i for i, hit in enumerate(hits) if hit) + 1
        inps.append(found / last)
    out = {f"rank{k}": sum(v) / len(v) for k, v in cmc.items()}
    return {**out, "mAP": sum(aps) / len(aps), "mINP": sum(inps) / len(inps)}


@pytest.mark.parametrize("max_rank", [10, 20])
def test_ranking_equals_irra_on_random_features(max_rank):
    generator = torch.Generator().manual_seed(max_rank)
    text = F.normalize(torch.randn(40, 8, generator=generator), dim=1)
    images = F.normalize(torch.randn(15, 8, generator=generator), dim=1)
    image_pids = np.arange(15) % 5
    text_pids = torch.randint(0, 5, (40,), generator=generator).numpy()
    result = t2i_rank(text, images, text_pids, image_pids, max_rank)
    ranks = report_ranks(max_rank)
    expected = irra_reference((text @ images.t()).numpy(), text_pids, image_pids, ranks)
    assert set(result) == set(expected) == {f"rank{k}" for k in ranks} | {"mAP", "mINP"}
    assert result == pytest.approx(expected, abs=1e-9)
    assert result["rank1"] < 1.0  # random features: not trivially perfect
    if max_rank == 20:  # the gallery (15) is shorter than the curve: every caption is found
        assert result["rank20"] == 1.0


def test_ranking_toy_case_and_ranks():
    # one caption of pid 7; by similarity the images rank pid 7, 3, 7
    text = torch.tensor([[1.0, 0.0]])
    images = F.normalize(torch.tensor([[1.0, 0.0], [0.2, 1.0], [1.0, 0.5]]), dim=1)
    result = t2i_rank(text, images, np.array([7]), np.array([7, 7, 3]), max_rank=3)
    assert result == pytest.approx({"rank1": 1.0, "rank3": 1.0, "mAP": (1 + 2 / 3) / 2,
                                    "mINP": 2 / 3})
    assert report_ranks(10) == (1, 5, 10) and report_ranks(4) == (1, 4)
    with pytest.raises(ValueError, match="max_rank"):
        report_ranks(0)
    with pytest.raises(ValueError, match="D=2 but image features D=3"):
        t2i_rank(text, torch.ones(3, 3), np.array([7]), np.array([7, 7, 3]))


def test_shuffled_captions_fall_to_chance():
    generator = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(40, 16, generator=generator), dim=1)
    image_pids = np.arange(40) // 2  # 20 persons, 2 images each
    described = np.repeat(np.arange(40), 2)  # 2 captions per image, feature = its image's
    text = F.normalize(images[described] + 0.05 * torch.randn(80, 16, generator=generator),
                       dim=1)
    pids = image_pids[described]
    assert t2i_rank(text, images, pids, image_pids)["rank1"] == 1.0
    shuffled = shuffled_pids(pids, seed=1)
    assert sorted(shuffled) == sorted(pids)
    assert np.array_equal(shuffled, shuffled_pids(pids, seed=1))
    assert not np.array_equal(shuffled, shuffled_pids(pids, seed=2))
    # chance: Rank-1 = P(the top image's pid is the permuted one) ~ 1/20
    assert t2i_rank(text, images, shuffled, image_pids)["rank1"] < 0.25


# ------------------------------------------------------------------ data, models, protection


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("t2i_task")
    make_synthetic_cuhk_pedes(root, CONFIG)
    return read_cuhk_pedes(root)


@pytest.fixture(scope="module")
def tokenizer(data) -> WordTokenizer:
    return WordTokenizer.build(row.caption for row in data.train)


class BagText(nn.Module):
    """Mean of token embeddings (padding excluded): ``(B, L)`` ids -> ``(B, 16)``."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab_size, 16, mode="mean", padding_idx=0)
        self.dropout = nn.Dropout(0.5)  # shows that encoding runs in eval mode

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.bag(tokens))


@pytest.fixture(scope="module")
def encoders(tokenizer):
    """``(image model, text encoder)``: a tiny random conv net and an embedding bag."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten())
    return (AuthorizedModel(net, CLIP_MEAN, CLIP_STD, name="TinyConv/image"),
            BagText(tokenizer.vocab_size))


def protect(image_model, data, out_dir, protector="identity", records=None, **hparams):
    protector = build_protector(protector, image_model, **hparams)
    identity = t2i_identity(protector, image_model, HEIGHT, WIDTH, "cuhk_pedes")
    records = gallery_records(data.test) if records is None else records
    return protect_gallery(protector, records, str(out_dir), identity, data.dataset_dir,
                           progress=False)


@pytest.fixture(scope="module")
def identity_folder(encoders, data, tmp_path_factory) -> ProtectedFolder:
    return protect(encoders[0], data, tmp_path_factory.mktemp("identity") / "out")


def digests(folder: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_protection_touches_only_gallery_files(encoders, data, tmp_path):
    dataset_dir = pathlib.Path(data.dataset_dir)
    before = digests(dataset_dir)
    records = gallery_records(data.test)
    assert len(records) == CONFIG.num_test_ids * CONFIG.images_per_id
    folder = protect(encoders[0], data, tmp_path / "out", "blur")
    assert digests(dataset_dir) == before  # json, train/val/test images: same bytes, no new file
    written = {name for name in digests(tmp_path / "out") if not name.startswith(".lock")}
    assert written == {r.output_key for r in records} | {"manifest.json"}
    assert set(folder.images) == {r.output_key for r in records}
    assert all(key.startswith("imgs/") and key.endswith(".png") for key in folder.images)
    assert {e.source for e in folder.entries()} == {r.relpath for r in records}
    with pytest.raises(ValueError, match="not gallery images"):
        protect(encoders[0], data, tmp_path / "train", records=list(data.train_images[:2]))
    assert not (tmp_path / "train").exists()


def test_text_features(encoders, tokenizer, data):
    text = encoders[1].train()
    captions = [q.caption for q in data.test.queries]
    features = text_features(text, tokenizer, captions, batch_size=3, context_length=CONTEXT)
    assert text.training  # the module's mode is restored
    assert features.shape == (len(captions), 16)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(len(captions)))
    with torch.no_grad():
        direct = F.normalize(text.eval()(tokenizer(captions, CONTEXT)), dim=1)
    torch.testing.assert_close(features, direct)
    as_function = text_features(lambda tokens: text.bag(tokens), tokenizer, captions, 100,
                                context_length=CONTEXT)
    torch.testing.assert_close(as_function, features)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        text_features(lambda tokens: tokens.float()[:, :, None], tokenizer, captions)
    with pytest.raises(ValueError, match="no captions"):
        text_features(text, tokenizer, [])


# ------------------------------------------------------------------ evaluation


def test_identity_protection_gives_t2p_equal_to_t2o(encoders, tokenizer, data, identity_folder,
                                                    tmp_path):
    image_model, text = encoders
    result = evaluate_t2i(image_model, text, tokenizer, identity_folder, data.test,
                          batch_size=5, context_length=CONTEXT)
    assert isinstance(result, EvaluationResult) and list(result.settings) == ["T2O", "T2P"]
    # 8-bit originals -> identity -> lossless PNG: the same pixels, features and ranking
    assert result.settings["T2P"] == result.settings["T2O"]
    assert set(result.settings["T2O"]) == METRICS
    # T2O independently: caption features against the dataset's own image files
    expected = t2i_rank(text_features(text, tokenizer, [q.caption for q in data.test.queries],
                                      context_length=CONTEXT),
                        path_features(image_model, [r.path for r in data.test.images], HEIGHT,
                                      WIDTH),
                        caption_pids(data.test.queries),
                        np.array([r.pid for r in data.test.images]))
    assert result.settings["T2O"] == pytest.approx(expected, abs=1e-12)
    assert evaluate_original(image_model, text, tokenizer, data.test, HEIGHT, WIDTH,
                             context_length=CONTEXT) == {"T2O": result.settings["T2O"]}
    assert result.num_query == len(data.test.queries) == 16 and result.num_gallery == 8
    assert result.privacy["ssim"] == pytest.approx(1.0)
    assert result.model == "TinyConv/image" and result.dataset == "cuhk_pedes"
    assert result.t2i_protocol["shuffle_seed"] is None
    result.write(str(tmp_path / "results.json"))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {"settings", "privacy", "protection", "num_query", "num_gallery", "model",
            "dataset", "t2i_protocol"} <= set(saved)
    assert T2IEvaluationResult.from_dict(saved) == result
    markdown = (tmp_path / "results.md").read_text()
    assert "| T2P |" in markdown and "16 captions" in markdown and "8 stored gallery" in markdown


def test_shuffled_control_relabels_the_captions(encoders, tokenizer, data, identity_folder):
    image_model, text = encoders
    result = evaluate_t2i(image_model, text, tokenizer, identity_folder, data.test,
                          context_length=CONTEXT, shuffle_seed=3)
    pids = shuffled_pids(caption_pids(data.test.queries), 3)
    gallery = path_features(image_model, [r.path for r in data.test.images], HEIGHT, WIDTH)
    captions = [q.caption for q in data.test.queries]
    expected = t2i_rank(text_features(text, tokenizer, captions, context_length=CONTEXT),
                        gallery, pids, np.array([r.pid for r in data.test.images]))
    assert result.settings["T2O"] == pytest.approx(expected, abs=1e-12)
    assert result.t2i_protocol["shuffle_seed"] == 3
    assert "shuffled (seed 3)" in result.to_markdown()


def test_pixelfade_gallery_is_read_back_from_its_pngs(encoders, tokenizer, data,
                                                      identity_folder, tmp_path):
    image_model, text = encoders
    records = gallery_records(data.test)
    eps = flip_calibrated_eps(image_model, load_images([r.path for r in records], HEIGHT, WIDTH))
    folder = protect(image_model, data, tmp_path / "pf", "pixelfade", steps=4, warmup_steps=1,
                     no_replace_last=1, num_masks=2, eps=eps, eps_mode="relative", seed=0)
    assert all(e.constraint_met is not None and e.distance is not None
               for e in folder.entries())
    result = evaluate_t2i(image_model, text, tokenizer, folder.path, data.test,
                          context_length=CONTEXT)
    reference = evaluate_t2i(image_model, text, tokenizer, identity_folder, data.test,
                             context_length=CONTEXT)
    assert result.settings["T2O"] == reference.settings["T2O"]  # originals are untouched
    stored = [folder.protected_path(folder.images[r.output_key]) for r in records]
    captions = [q.caption for q in data.test.queries]
    expected = t2i_rank(text_features(text, tokenizer, captions, context_length=CONTEXT),
                        path_features(image_model, stored, HEIGHT, WIDTH),
                        caption_pids(data.test.queries), np.array([r.pid for r in records]))
    assert result.settings["T2P"] == pytest.approx(expected, abs=1e-12)
    assert result.protection["name"] == "pixelfade" and result.protection["steps"] == 4
    assert 0.0 <= result.protection["constraint_met_fraction"] <= 1.0
    assert result.privacy["ssim"] < 0.9
    assert all(0.0 <= v <= 1.0 for row in result.settings.values() for v in row.values())


def test_evaluation_refuses_a_folder_missing_gallery_images(encoders, tokenizer, data,
                                                           tmp_path):
    image_model, text = encoders
    folder = protect(image_model, data, tmp_path / "part",
                     records=gallery_records(data.test)[:3])
    with pytest.raises(ValueError, match="5 of 8 gallery images are not stored"):
        evaluate_t2i(image_model, text, tokenizer, folder, data.test, context_length=CONTEXT)
