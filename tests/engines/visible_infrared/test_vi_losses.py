"""AGW's VI losses: the weighted regularised triplet against a loop reference, and CE."""
import math

import pytest
import torch

from torchreid_pixelfade.engines.visible_infrared.losses import (
    CrossEntropyLoss,
    WRTTripletLoss,
    cross_entropy_loss,
    masked_softmax,
    pairwise_euclidean,
    wrt_distances,
    wrt_triplet_loss,
)


def wrt_reference(features, targets, as_agw=True):
    """WRT from its definition, one anchor at a time, in float64.

    ``as_agw`` adds AGW's quirk: the softmax denominators get +1e-6 and the negatives' softmax
    is not shifted by its maximum (AGW's shift is the row maximum of ``-d * is_neg``, which the
    zeros of the positives make 0), so for large distances the negative weights sum to < 1.
    """
    x, n, total = features.double(), len(features), 0.0
    extra = 1e-6 if as_agw else 0.0
    for i in range(n):
        dist = [math.sqrt(max(float(((x[i] - x[j]) ** 2).sum()), 1e-12)) for j in range(n)]
        pos = [dist[j] for j in range(n) if targets[j] == targets[i]]
        neg = [dist[j] for j in range(n) if targets[j] != targets[i]]
        top = max(pos)
        d_p = (sum(d * math.exp(d - top) for d in pos)
               / (sum(math.exp(d - top) for d in pos) + extra))
        shift = 0.0 if as_agw else -min(neg)
        d_n = (sum(d * math.exp(-d - shift) for d in neg)
               / (sum(math.exp(-d - shift) for d in neg) + extra))
        total += math.log1p(math.exp(d_p - d_n))
    return total / n


@pytest.fixture
def batch():
    torch.manual_seed(0)
    targets = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 3, 3, 3])
    centers = torch.randn(4, 16) * 2
    noise = torch.randn(len(targets), 16)
    return centers, noise, targets


@pytest.mark.parametrize("scale", [0.2, 1.0])
def test_wrt_matches_the_loop_reference(batch, scale):
    centers, noise, targets = batch
    features = scale * (centers[targets] + noise)
    loss = wrt_triplet_loss(features, targets)
    assert torch.isfinite(loss) and loss > 0
    assert loss.item() == pytest.approx(wrt_reference(features, targets), rel=1e-4)


def test_wrt_is_the_textbook_definition_at_small_distances(batch):
    centers, noise, targets = batch
    features = 0.2 * (centers[targets] + noise)  # distances about 1-3
    textbook = wrt_reference(features, targets, as_agw=False)
    assert wrt_triplet_loss(features, targets).item() == pytest.approx(textbook, rel=1e-4)
    far = 5 * features  # distances about 5-15: AGW's negative weights no longer sum to 1
    assert wrt_triplet_loss(far, targets).item() > 1.01 * wrt_reference(far, targets, False)


def test_wrt_decreases_as_positives_get_closer(batch):
    centers, noise, targets = batch
    losses = [wrt_triplet_loss(centers[targets] + scale * noise, targets).item()
              for scale in (2.0, 1.0, 0.5, 0.1)]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.1 * losses[0]


def test_wrt_gradient_step_reduces_the_loss(batch):
    centers, noise, targets = batch
    features = (centers[targets] + noise).requires_grad_(True)
    loss = wrt_triplet_loss(features, targets)
    (grad,) = torch.autograd.grad(loss, features)
    assert torch.isfinite(grad).all()
    assert wrt_triplet_loss(features.detach() - 0.5 * grad, targets) < loss


def test_wrt_distances_and_weights(batch):
    centers, noise, targets = batch
    features = 0.2 * (centers[targets] + noise)
    d_p, d_n = wrt_distances(features, targets)
    dist = pairwise_euclidean(features, features)
    same = targets[:, None] == targets[None, :]
    assert torch.all(d_p <= dist.masked_fill(~same, 0).max(1).values + 1e-6)  # <= hardest pos
    assert torch.all(d_n >= dist.masked_fill(same, float("inf")).min(1).values - 1e-6)
    weights = masked_softmax(torch.randn(3, 4), torch.tensor([[1.0, 1, 0, 0]] * 3))
    assert torch.allclose(weights.sum(1), torch.ones(3), atol=1e-5)
    assert torch.all(weights[:, 2:] == 0)


def test_wrt_edge_cases_and_module(batch):
    centers, noise, targets = batch
    features = centers[targets] + noise
    assert torch.isfinite(wrt_triplet_loss(features[:3], torch.zeros(3, dtype=torch.long)))
    scaled = wrt_triplet_loss(3 * features, targets, normalize_feature=True)
    assert scaled.item() == pytest.approx(wrt_triplet_loss(features, targets, True).item(),
                                          rel=1e-4)
    assert WRTTripletLoss()(features, targets) == wrt_triplet_loss(features, targets)
    with pytest.raises(ValueError, match=r"Expected features \(N, D\) and targets \(N,\)"):
        wrt_triplet_loss(features, targets[:-1])


def test_cross_entropy_with_label_smoothing():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    eps = 0.1
    smoothed = torch.full((6, 5), eps / 5).scatter_(1, targets[:, None], 1 - eps + eps / 5)
    expected = -(smoothed * logits.log_softmax(1)).sum(1).mean()
    assert cross_entropy_loss(logits, targets, eps) == pytest.approx(expected.item(), rel=1e-6)
    assert CrossEntropyLoss()(logits, targets) == torch.nn.functional.cross_entropy(logits, targets)
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(1.0)
