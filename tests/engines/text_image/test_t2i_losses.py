"""IRRA's SDM / ID / MLM losses and its MLM token masking."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from torchreid_pixelfade.engines.text_image.losses import (
    IDLoss,
    MLMLoss,
    SDMLoss,
    id_loss,
    itc_loss,
    mask_tokens,
    matching_distribution,
    mlm_loss,
    sdm_loss,
)

MASK, LOW, HIGH = 97, 1, 97  # ids: pad 0, ordinary 1..96, mask 97, sot 98, eot 99
SOT, EOT = 98, 99


def sdm_reference(image, text, pids, scale, eps=1e-8):
    """A loop over rows, from the definition: KL(p_i || q_i) with log(q + eps), both ways."""
    total = 0.0
    for a, b in ((image, text), (text, image)):
        for i in range(len(a)):
            cos = torch.stack([F.cosine_similarity(a[i], b[j], dim=0) for j in range(len(b))])
            p = torch.softmax(scale * cos, dim=0)
            same = (pids == pids[i]).double()
            q = same / same.sum()
            total = total + (p * (p.log() - (q + eps).log())).sum() / len(a)
    return total


def test_sdm_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(6, 5, generator=g).double(), torch.randn(6, 5, generator=g).double()
    pids = torch.tensor([0, 1, 0, 2, 1, 3])
    torch.testing.assert_close(sdm_loss(image, text, pids, 7.0), sdm_reference(image, text,
                                                                                pids, 7.0))
    torch.testing.assert_close(SDMLoss()(image, text, pids, 7.0), sdm_loss(image, text, pids, 7.0))


def test_sdm_is_non_negative_on_random_input():
    g = torch.Generator().manual_seed(1)
    for trial in range(20):
        image, text = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
        pids = torch.randint(0, 4, (8,), generator=g)
        loss = sdm_loss(image, text, pids, 50.0)
        assert loss.item() > -2 * math.log1p(8e-8) - 1e-6, trial
        assert loss.item() > 0.1  # random features are far from the matching distribution


def test_sdm_is_zero_when_the_prediction_is_the_matching_distribution():
    # Persons 0, 1, 2 with 2, 1, 3 rows; each person one orthogonal direction, both modalities.
    pids = torch.tensor([0, 0, 1, 2, 2, 2])
    features = torch.eye(3, dtype=torch.float64)[pids] * 3.0
    # softmax(s * cos) puts 1 - O(e^-s) on the same-person rows, uniformly: q.
    loss = sdm_loss(features, features * 0.5, pids, logit_scale=60.0)
    assert abs(loss.item()) < 1e-6
    # Swapping two persons' text features breaks the match.
    swapped = features[[3, 3, 2, 0, 0, 0]]
    assert sdm_loss(features, swapped, pids, 60.0).item() > 10


def test_sdm_gradient_check():
    g = torch.Generator().manual_seed(2)
    image = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    text = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    pids = torch.tensor([0, 1, 0, 2])
    assert torch.autograd.gradcheck(lambda a, b: sdm_loss(a, b, pids, 5.0), (image, text))


def test_matching_distribution_rows():
    q = matching_distribution(torch.tensor([3, 5, 3, 3]))
    torch.testing.assert_close(q.sum(1), torch.ones(4))
    assert q[0].tolist() == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])
    assert q[1].tolist() == [0, 1, 0, 0]


def test_sdm_rejects_bad_shapes():
    with pytest.raises(ValueError, match="pids"):
        sdm_loss(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(3, dtype=torch.long), 50.0)


def test_id_loss_is_the_mean_of_two_cross_entropies():
    g = torch.Generator().manual_seed(3)
    image, text = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    pids = torch.tensor([0, 1, 2, 3, 1])
    expected = (F.cross_entropy(image, pids) + F.cross_entropy(text, pids)) / 2
    torch.testing.assert_close(id_loss(image, text, pids), expected)
    torch.testing.assert_close(IDLoss()(image, text, pids), expected)
    confident = F.one_hot(pids, 4).float() * 100
    assert id_loss(confident, confident, pids).item() < 1e-6


def test_itc_loss_prefers_matching_pairs():
    features = torch.eye(4)
    assert itc_loss(features, features, 50.0).item() < 1e-6
    assert itc_loss(features, features.flip(0), 50.0).item() > 10


def test_mlm_loss_ignores_label_zero():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 10, generator=g)
    labels = torch.tensor([[0, 3, 0, 0, 0], [0, 0, 7, 0, 1]])
    picked = logits[labels != 0]
    expected = F.cross_entropy(picked, labels[labels != 0])
    torch.testing.assert_close(mlm_loss(logits, labels), expected)
    torch.testing.assert_close(MLMLoss()(logits, labels), expected)
    changed = logits.clone()
    changed[labels == 0] = 100.0  # unlabelled positions do not count
    torch.testing.assert_close(mlm_loss(changed, labels), expected)
    with pytest.raises(ValueError, match="no masked token"):
        mlm_loss(logits, torch.zeros_like(labels))


# ------------------------------------------------------------------ masking


def caption_batch(rows: int = 400, words: int = 20) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    tokens = torch.zeros(rows, 32, dtype=torch.long)
    tokens[:, 0] = SOT
    tokens[:, 1:words + 1] = torch.randint(LOW, HIGH, (rows, words), generator=g)
    tokens[:, words + 1] = EOT
    return tokens


def test_mask_tokens_follows_the_80_10_10_rule():
    tokens = caption_batch()
    masked, labels = mask_tokens(tokens, MASK, (LOW, HIGH), torch.Generator().manual_seed(0))
    selected = labels != 0
    assert masked.shape == labels.shape == tokens.shape
    assert torch.equal(labels[selected], tokens[selected])  # labels are the original ids
    assert torch.equal(masked[~selected], tokens[~selected])  # the rest is untouched
    special = (tokens == 0) | (tokens >= MASK)
    assert not selected[special].any()  # pad, sot and eot are never chosen
    assert selected.any(dim=1).all()  # at least one per caption
    rate = selected.sum().item() / (~special).sum().item()
    assert rate == pytest.approx(0.15, abs=0.015)
    to_mask = (masked[selected] == MASK).float().mean().item()
    kept = (masked[selected] == tokens[selected]).float().mean().item()
    assert to_mask == pytest.approx(0.8, abs=0.04)
    assert kept == pytest.approx(0.1 + 0.1 / (HIGH - LOW), abs=0.03)
    changed = masked[selected & (masked != MASK)]
    assert ((changed >= LOW) & (changed < HIGH)).all()  # random ids are ordinary


def test_mask_tokens_is_seeded_by_the_generator_only():
    tokens = caption_batch(8)
    a = mask_tokens(tokens, MASK, (LOW, HIGH), torch.Generator().manual_seed(3))
    torch.manual_seed(123)  # the global RNG plays no part
    b = mask_tokens(tokens, MASK, (LOW, HIGH), torch.Generator().manual_seed(3))
    c = mask_tokens(tokens, MASK, (LOW, HIGH), torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert torch.equal(tokens, caption_batch(8))  # the input is not modified


def test_mask_tokens_masks_one_token_of_a_short_caption():
    tokens = torch.tensor([SOT, 5, EOT, 0, 0])
    for seed in range(30):
        masked, labels = mask_tokens(tokens, MASK, (LOW, HIGH),
                                     torch.Generator().manual_seed(seed), probability=0.01)
        assert labels.tolist() == [0, 5, 0, 0, 0]
        assert masked.tolist() == [SOT, MASK, EOT, 0, 0]  # forced picks become the mask


def test_mask_tokens_errors():
    g = torch.Generator()
    with pytest.raises(ValueError, match="no ordinary token"):
        mask_tokens(torch.tensor([[SOT, EOT, 0]]), MASK, (LOW, HIGH), g)
    with pytest.raises(ValueError, match="probability"):
        mask_tokens(caption_batch(2), MASK, (LOW, HIGH), g, probability=0.0)
