"""IRRA's losses for text-to-image training (anosorae/IRRA ``model/objectives.py``) as pure
functions with thin ``nn.Module`` twins, and IRRA's MLM token masking.

IRRA trains with ``sdm + id + mlm``, each with weight 1:

- **SDM** (similarity distribution matching): within a batch of ``B`` image-caption pairs, the
  true matching distribution of row i is ``q_ij = y_ij / sum_k y_ik`` with ``y_ij = 1`` when
  rows i and j show the same person. The predicted one is ``p_i = softmax(s * cos(., .))``
  with the fixed ``logit_scale`` s (50). The loss is ``KL(p || q)`` (with ``log(q + eps)``)
  averaged over rows, for image-to-text plus text-to-image.
- **ID**: one classifier on both modalities' features, ``(CE(image) + CE(text)) / 2``.
- **MLM**: cross-entropy of the masked-token predictions; label 0 means "not masked" and is
  ignored.
- **ITC** (InfoNCE, not in IRRA's recipe; for ablations): symmetric cross-entropy with the
  diagonal as the positives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: IRRA's MLM masking: 15% of ordinary tokens; of those 80% -> mask, 10% -> random, 10% kept.
MASK_PROBABILITY = 0.15
MASK_TO_MASK, MASK_TO_RANDOM = 0.8, 0.1
LOSS_NAMES = ("sdm", "id", "mlm", "itc")


def _check_pair(image_feats: torch.Tensor, text_feats: torch.Tensor,
                pids: torch.Tensor | None = None) -> None:
    shapes_ok = image_feats.dim() == 2 and image_feats.shape == text_feats.shape
    if not shapes_ok or (pids is not None and pids.shape != (len(image_feats),)):
        got = [tuple(t.shape) for t in (image_feats, text_feats, pids) if t is not None]
        raise ValueError(f"Expected image and text features (B, D) and pids (B,), got {got}")


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(M, D), (N, D) -> (M, N)`` cosine similarities in [-1, 1] (IRRA divides by the norm)."""
    return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).t()


def matching_distribution(pids: torch.Tensor, dtype: torch.dtype = torch.float32
                          ) -> torch.Tensor:
    """``(B,) -> (B, B)`` true matching distribution ``q``: each row is uniform over the
    rows with the same pid (itself included), so it sums to 1."""
    labels = (pids[:, None] == pids[None, :]).to(dtype)
    return labels / labels.sum(dim=1, keepdim=True)


def _kl_rows(logits: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``sum_j p_ij (log p_ij - log_q_ij)``, ``p = softmax(logits)``."""
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()


def sdm_loss(image_feats: torch.Tensor, text_feats: torch.Tensor, pids: torch.Tensor,
             logit_scale: float | torch.Tensor, epsilon: float = 1e-8) -> torch.Tensor:
    """IRRA's similarity distribution matching loss, both directions.

    Args:
        image_feats: ``(B, D)`` image features (any norm; cosine similarity is used).
        text_feats: ``(B, D)`` text features of the same rows.
        pids: ``(B,)`` integer person ids.
        logit_scale: ``1 / temperature`` (IRRA 50).
        epsilon: Added to ``q`` inside the log (IRRA 1e-8).

    Returns:
        Scalar ``KL_i2t + KL_t2i``, >= ``-2 log(1 + B * epsilon)`` (about 0 from below: ``q +
        epsilon`` sums to slightly more than 1), and about 0 only when each predicted
        distribution equals ``q``.

    Raises:
        ValueError: For mismatched shapes.
    """
    _check_pair(image_feats, text_feats, pids)
    t2i = logit_scale * cosine_similarity_matrix(text_feats, image_feats)
    log_q = torch.log(matching_distribution(pids, t2i.dtype) + epsilon)
    return _kl_rows(t2i.t(), log_q) + _kl_rows(t2i, log_q)


def itc_loss(image_feats: torch.Tensor, text_feats: torch.Tensor,
             logit_scale: float | torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (IRRA ``compute_itc``): row i of each modality matches row i only.

    Returns:
        Scalar ``(CE_i2t + CE_t2i) / 2`` >= 0.
    """
    _check_pair(image_feats, text_feats)
    logits = logit_scale * cosine_similarity_matrix(image_feats, text_feats)
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


def id_loss(image_logits: torch.Tensor, text_logits: torch.Tensor, pids: torch.Tensor
            ) -> torch.Tensor:
    """IRRA's identity loss, ``(CE(image_logits, pids) + CE(text_logits, pids)) / 2``.

    Args:
        image_logits, text_logits: ``(B, C)`` classifier outputs.
        pids: ``(B,)`` labels in ``[0, C)``.
    """
    _check_pair(image_logits, text_logits, pids)
    return (F.cross_entropy(image_logits, pids) + F.cross_entropy(text_logits, pids)) / 2


def mlm_loss(mlm_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Masked-language-modelling cross-entropy; label 0 (pad, "not masked") is ignored.

    Args:
        mlm_logits: ``(B, L, V)`` or ``(N, V)`` scores.
        labels: ``(B, L)`` or ``(N,)`` original ids at masked positions, 0 elsewhere.

    Raises:
        ValueError: For mismatched shapes, or when no position is labelled (the mean would
            be NaN; :func:`mask_tokens` always labels at least one token per caption).
    """
    if mlm_logits.shape[:-1] != labels.shape:
        raise ValueError(f"Expected logits (..., V) matching labels (...), got "
                         f"{tuple(mlm_logits.shape)} and {tuple(labels.shape)}")
    if not bool((labels != 0).any()):
        raise ValueError("mlm_loss: no masked token in the batch (every label is 0)")
    return F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]), labels.reshape(-1),
                           ignore_index=0)


def mask_tokens(tokens: torch.Tensor, mask_id: int, ordinary_range: tuple[int, int],
                generator: torch.Generator, probability: float = MASK_PROBABILITY
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """IRRA's MLM input: BERT's 80/10/10 rule on ordinary tokens only.

    Each ordinary token (``lo <= id < hi``: not pad, mask, sot or eot) is selected with
    ``probability``; a selected token becomes ``mask_id`` with probability 0.8, a uniformly
    random ordinary id with 0.1, and stays with 0.1. A caption with no token selected gets its
    first ordinary token masked (IRRA masks position 1, the token after sot).

    Args:
        tokens: ``(L,)`` or ``(B, L)`` int64 ids in IRRA's layout (not modified).
        mask_id: The mask token id.
        ordinary_range: Half-open ``(lo, hi)`` (a tokenizer's ``ordinary_range``).
        generator: The only source of randomness (on ``tokens``' device).
        probability: Selection probability in (0, 1].

    Returns:
        ``(masked_tokens, labels)``, both shaped like ``tokens``; ``labels`` holds the
        original id at every selected position and 0 elsewhere (at least one per caption).

    Raises:
        ValueError: For a probability outside (0, 1] or a caption without ordinary tokens.
    """
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"probability must be in (0, 1], got {probability}")
    rows = tokens.unsqueeze(0) if tokens.dim() == 1 else tokens
    low, high = ordinary_range
    ordinary = (rows >= low) & (rows < high)
    empty = ~ordinary.any(dim=1)
    if bool(empty.any()):
        raise ValueError(f"caption row(s) {empty.nonzero().flatten().tolist()[:10]} have no "
                         f"ordinary token in [{low}, {high}) to mask")
    draw = torch.rand(rows.shape, generator=generator, device=rows.device)
    selected = ordinary & (draw < probability)
    first = ordinary.int().argmax(dim=1)  # the first ordinary position of each row
    none = ~selected.any(dim=1)
    selected[none.nonzero().flatten(), first[none]] = True
    action = draw / probability  # uniform in [0, 1) given selection
    to_mask = selected & ((action < MASK_TO_MASK) | none[:, None])
    to_random = selected & ~to_mask & (action < MASK_TO_MASK + MASK_TO_RANDOM)
    random_ids = torch.randint(low, high, rows.shape, generator=generator, device=rows.device)
    masked = torch.where(to_mask, torch.full_like(rows, mask_id), rows)
    masked = torch.where(to_random, random_ids, masked)
    labels = torch.where(selected, rows, torch.zeros_like(rows))
    return masked.reshape(tokens.shape), labels.reshape(tokens.shape)


class SDMLoss(nn.Module):
    """Module twin of :func:`sdm_loss`."""

    def __init__(self, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.epsilon = epsilon

    def forward(self, image_feats: torch.Tensor, text_feats: torch.Tensor, pids: torch.Tensor,
                logit_scale: float | torch.Tensor) -> torch.Tensor:
        return sdm_loss(image_feats, text_feats, pids, logit_scale, self.epsilon)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"


class IDLoss(nn.Module):
    """Module twin of :func:`id_loss`."""

    def forward(self, image_logits: torch.Tensor, text_logits: torch.Tensor,
                pids: torch.Tensor) -> torch.Tensor:
        return id_loss(image_logits, text_logits, pids)


class MLMLoss(nn.Module):
    """Module twin of :func:`mlm_loss`."""

    def forward(self, mlm_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return mlm_loss(mlm_logits, labels)


__all__ = [
    "LOSS_NAMES",
    "MASK_PROBABILITY",
    "IDLoss",
    "MLMLoss",
    "SDMLoss",
    "cosine_similarity_matrix",
    "id_loss",
    "itc_loss",
    "mask_tokens",
    "matching_distribution",
    "mlm_loss",
    "sdm_loss",
]
