"""AGW's losses for visible-infrared training: identity cross-entropy and the weighted
regularised triplet (WRT), as pure functions with thin ``nn.Module`` twins.

AGW trains with ``cross_entropy(logits) + wrt_triplet(x_pool)`` on the concatenated visible and
thermal batch (mangye16/Cross-Modal-Re-ID-baseline ``train.py``, ``loss.py:TripletLoss_WRT``).
WRT replaces the hardest positive and negative of batch-hard mining by softmax-weighted
averages: for an anchor i with Euclidean distances d_ij,

- positives (same id, the anchor included): ``w_ij = exp(d_ij) / sum_k exp(d_ik)``, so farther
  positives weigh more, and ``d_p(i) = sum_j w_ij d_ij``;
- negatives: ``w_ij = exp(-d_ij) / sum_k exp(-d_ik)``, so closer negatives weigh more, and
  ``d_n(i) = sum_j w_ij d_ij``;
- loss: the soft margin ``mean_i log(1 + exp(d_p(i) - d_n(i)))``, with no margin parameter.

Gradients flow through the weights as well as the distances, as in AGW.

AGW's quirk, kept for fidelity: its masked softmax shifts the scores by the row maximum of
``scores * mask``. For the negatives the scores ``-d`` are negative and the masked-out entries
are 0, so the shift is 0 instead of ``-min d``; with the 1e-6 added to the denominator, the
negative weights then sum to ``S / (S + 1e-6)`` with ``S = sum exp(-d)``, clearly below 1 once
distances exceed about 10, which shrinks ``d_n`` towards 0. For small distances the loss is the
textbook one above (tests check both against a loop reference).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pairwise_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``(M, D), (N, D) -> (M, N)``, >= 1e-6.

    Squared distances are clamped at 1e-12 before the root (as AGW does), which keeps the
    gradient finite at zero distance.
    """
    squared = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1) - 2 * x @ y.t()
    return squared.clamp(min=1e-12).sqrt()


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of ``scores`` over the entries where ``mask`` is 1.

    Args:
        scores: ``(N, M)`` scores.
        mask: ``(N, M)`` 0/1 floats; entries outside the mask get weight 0.

    Returns:
        ``(N, M)`` weights in [0, 1]. As in AGW, scores are shifted by the row maximum of
        ``scores * mask`` (masked entries count as 0) and 1e-6 is added to the denominator, so
        a row sums to slightly less than 1, much less when all its masked scores are below
        about -10, and to 0 for an empty mask.
    """
    shift = (scores * mask).max(dim=1, keepdim=True).values
    exp = torch.exp(scores - shift) * mask
    return exp / (exp.sum(dim=1, keepdim=True) + 1e-6)


def _check_batch(features: torch.Tensor, targets: torch.Tensor) -> None:
    if features.dim() != 2 or targets.dim() != 1 or len(features) != len(targets):
        raise ValueError(f"Expected features (N, D) and targets (N,), got "
                         f"{tuple(features.shape)} and {tuple(targets.shape)}")


def wrt_distances(features: torch.Tensor, targets: torch.Tensor,
                  normalize_feature: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted positive and negative distance of every anchor.

    Args:
        features: ``(N, D)`` features (AGW: the pooled pre-BN feature of both modalities).
        targets: ``(N,)`` integer identity labels.
        normalize_feature: L2-normalise the features first.

    Returns:
        ``(d_p, d_n)``, each ``(N,)`` and >= 0; ``d_n`` is 0 for an anchor without negatives.
        ``(d_n >= d_p).sum()`` is AGW's "correct" count.

    Raises:
        ValueError: for mismatched shapes.
    """
    _check_batch(features, targets)
    if normalize_feature:
        features = F.normalize(features, dim=1)
    dist = pairwise_euclidean(features, features)
    is_pos = (targets[:, None] == targets[None, :]).to(dist.dtype)
    is_neg = 1.0 - is_pos
    dist_ap, dist_an = dist * is_pos, dist * is_neg
    d_p = (dist_ap * masked_softmax(dist_ap, is_pos)).sum(dim=1)
    d_n = (dist_an * masked_softmax(-dist_an, is_neg)).sum(dim=1)
    return d_p, d_n


def wrt_triplet_loss(features: torch.Tensor, targets: torch.Tensor,
                     normalize_feature: bool = False) -> torch.Tensor:
    """Weighted regularised triplet loss (AGW's ``TripletLoss_WRT``), a scalar > 0.

    Args:
        features: ``(N, D)`` features.
        targets: ``(N,)`` integer identity labels.
        normalize_feature: L2-normalise the features first.

    Example:
        >>> features = torch.tensor([[0.0, 0.0], [0.1, 0.0], [3.0, 0.0], [3.1, 0.0]])
        >>> wrt_triplet_loss(features, torch.tensor([0, 0, 1, 1])) < 0.1
        tensor(True)
    """
    d_p, d_n = wrt_distances(features, targets, normalize_feature)
    return F.soft_margin_loss(d_n - d_p, torch.ones_like(d_n))


def cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    """Identity cross-entropy, optionally label-smoothed (AGW-VI trains with none).

    Args:
        logits: ``(N, C)`` classifier outputs.
        targets: ``(N,)`` labels in ``[0, C)``.
        label_smoothing: epsilon in [0, 1): the target is ``(1 - eps) * onehot + eps / C``,
            the smoothing of torchreid's ``CrossEntropyLoss``.

    Raises:
        ValueError: for an epsilon outside [0, 1) or mismatched shapes.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    _check_batch(logits, targets)
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


class WRTTripletLoss(nn.Module):
    """Module twin of :func:`wrt_triplet_loss`: ``loss = WRTTripletLoss()(features, targets)``."""

    def __init__(self, normalize_feature: bool = False) -> None:
        super().__init__()
        self.normalize_feature = normalize_feature

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return wrt_triplet_loss(features, targets, self.normalize_feature)

    def extra_repr(self) -> str:
        return f"normalize_feature={self.normalize_feature}"


class CrossEntropyLoss(nn.Module):
    """Module twin of :func:`cross_entropy_loss`."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return cross_entropy_loss(logits, targets, self.label_smoothing)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


__all__ = [
    "CrossEntropyLoss",
    "WRTTripletLoss",
    "cross_entropy_loss",
    "masked_softmax",
    "pairwise_euclidean",
    "wrt_distances",
    "wrt_triplet_loss",
]
