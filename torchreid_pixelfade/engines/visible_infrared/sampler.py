"""The paired identity sampler of AGW for visible-infrared training.

Each batch holds P identities, and for each of them K visible and K thermal images, as AGW's
``IdentitySampler`` (mangye16/Cross-Modal-Re-ID-baseline ``utils.py``) draws them: identities
without replacement within a batch, images of an identity with replacement. Here it is a batch
sampler over one dataset holding both modalities, so ``DataLoader(dataset,
batch_sampler=sampler)`` gives ``2 * P * K`` items per batch, laid out as

``[visible of id 1 (K), ..., visible of id P (K), thermal of id 1 (K), ..., thermal of id P (K)]``

The first half is the visible batch and the second the thermal batch, with the same labels in the
same order (what ``modal=0`` of the two-stream net and the official training expect).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from .model import THERMAL, VISIBLE

logger = logging.getLogger(__name__)

#: Accepted spellings of the two modalities (case-insensitive strings, or the modal codes).
MODALITY_NAMES = {"visible": VISIBLE, "rgb": VISIBLE, "v": VISIBLE,
                  "thermal": THERMAL, "infrared": THERMAL, "ir": THERMAL, "t": THERMAL}


def modality_code(value: Any) -> int:
    """:data:`~.model.VISIBLE` (1) or :data:`~.model.THERMAL` (2) for a code or a name.

    Raises:
        ValueError: for anything else.
    """
    if isinstance(value, str) and value.lower() in MODALITY_NAMES:
        return MODALITY_NAMES[value.lower()]
    if not isinstance(value, str) and value in (VISIBLE, THERMAL):
        return int(value)
    raise ValueError(f"Unknown modality {value!r}: use {VISIBLE} (visible) or {THERMAL} "
                     f"(thermal), or one of {sorted(MODALITY_NAMES)}")


def _field(record: Any, name: str, index: int | None) -> Any:
    """``record[name]`` of a mapping, ``record.name`` of an object, else ``record[index]``."""
    if isinstance(record, Mapping):
        return record[name]
    if hasattr(record, name):
        return getattr(record, name)
    if index is None:
        raise ValueError(f"cannot read {name!r} from the record {record!r}; pass {name}_of=")
    return record[index]


class PairedIdentitySampler(Sampler[list[int]]):
    """Batches of P identities x (K visible + K thermal) dataset indices.

    Only identities with images in both modalities are drawn. Each pass over the sampler is a
    fixed function of ``(seed, epoch)``; the epoch starts at 0 and goes up by one per pass (so
    consecutive epochs differ without any call from the training loop), and :meth:`set_epoch`
    sets it explicitly.

    Args:
        pids: the identity label of each dataset index.
        modalities: the modality of each dataset index (see :func:`modality_code`).
        num_ids: P, identities per batch (AGW: 8).
        num_pos: K, images per identity and modality (AGW: 4).
        num_batches: batches per pass; default, as AGW, ``max(n_visible, n_thermal) // (P * K)
            + 1``, about one pass over the larger modality.
        seed: the seed of the draws.

    Raises:
        ValueError: for mismatched lengths, unknown modalities, non-positive sizes, or fewer
            than ``num_ids`` identities present in both modalities.

    Example:
        >>> pids, modalities = [0, 0, 1, 1], ["rgb", "ir", "rgb", "ir"]
        >>> sampler = PairedIdentitySampler(pids, modalities, num_ids=2, num_pos=1)
        >>> batch = next(iter(sampler))  # visible of the 2 ids, then thermal of the same ids
        >>> [modalities[i] for i in batch]
        ['rgb', 'rgb', 'ir', 'ir']
        >>> [pids[i] for i in batch[:2]] == [pids[i] for i in batch[2:]]
        True
    """

    def __init__(self, pids: Sequence[int], modalities: Sequence[Any], num_ids: int = 8,
                 num_pos: int = 4, num_batches: int | None = None, seed: int = 0) -> None:
        if len(pids) != len(modalities):
            raise ValueError(f"got {len(pids)} pids but {len(modalities)} modalities")
        if num_ids < 1 or num_pos < 1 or (num_batches is not None and num_batches < 1):
            raise ValueError(f"num_ids, num_pos and num_batches must be >= 1; got {num_ids}, "
                             f"{num_pos}, {num_batches}")
        self.num_ids, self.num_pos, self.seed, self.epoch = num_ids, num_pos, seed, 0
        self.visible = _positions(pids, modalities, VISIBLE)
        self.thermal = _positions(pids, modalities, THERMAL)
        self.ids = np.array(sorted(set(self.visible) & set(self.thermal)))
        _check_ids(self.ids, self.visible, self.thermal, num_ids)
        largest = max(sum(map(len, self.visible.values())), sum(map(len, self.thermal.values())))
        self.num_batches = num_batches or largest // (num_ids * num_pos) + 1

    @classmethod
    def from_records(cls, records: Sequence[Any], pid_of: Callable[[Any], int] | None = None,
                     modality_of: Callable[[Any], Any] | None = None,
                     **kwargs: Any) -> PairedIdentitySampler:
        """Builds the sampler from dataset records.

        Args:
            records: one per dataset index: mappings with ``pid`` and ``modality`` keys,
                objects with such attributes, or torchreid tuples ``(path, pid, camid, ...)``
                together with ``modality_of``.
            pid_of: reads the pid of a record (default: key/attribute ``pid``, else item 1).
            modality_of: reads the modality (default: key/attribute ``modality``), e.g.
                ``lambda r: 2 if r[2] in (3, 6) else 1`` for SYSU-MM01 cameras.
            **kwargs: the other arguments of the constructor.
        """
        pid_of = pid_of or (lambda record: _field(record, "pid", 1))
        modality_of = modality_of or (lambda record: _field(record, "modality", None))
        return cls([int(pid_of(r)) for r in records], [modality_of(r) for r in records],
                   **kwargs)

    @property
    def batch_size(self) -> int:
        """Items per batch, ``2 * num_ids * num_pos``."""
        return 2 * self.num_ids * self.num_pos

    def set_epoch(self, epoch: int) -> None:
        """Makes the next pass the one of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        for _ in range(self.num_batches):
            yield self._batch(rng)

    def _batch(self, rng: np.random.Generator) -> list[int]:
        ids = rng.choice(self.ids, size=self.num_ids, replace=False)
        visible = [rng.choice(self.visible[pid], size=self.num_pos) for pid in ids]
        thermal = [rng.choice(self.thermal[pid], size=self.num_pos) for pid in ids]
        return np.concatenate(visible + thermal).tolist()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(ids={len(self.ids)}, num_ids={self.num_ids}, "
                f"num_pos={self.num_pos}, num_batches={self.num_batches}, seed={self.seed})")


def _positions(pids: Sequence[int], modalities: Sequence[Any], modal: int) -> dict[int, list]:
    """``{pid: [dataset indices of that pid in modality modal]}``."""
    positions: dict[int, list] = {}
    for index, (pid, modality) in enumerate(zip(pids, modalities)):
        if modality_code(modality) == modal:
            positions.setdefault(int(pid), []).append(index)
    return positions


def _check_ids(ids: np.ndarray, visible: dict, thermal: dict, num_ids: int) -> None:
    if len(ids) < num_ids:
        raise ValueError(f"{len(ids)} identities have images in both modalities "
                         f"({len(visible)} visible, {len(thermal)} thermal); a batch needs "
                         f"num_ids={num_ids}")
    unpaired = len(set(visible) | set(thermal)) - len(ids)
    if unpaired:
        logger.warning("%d identities have images in one modality only and are never drawn",
                       unpaired)


__all__ = ["MODALITY_NAMES", "PairedIdentitySampler", "modality_code"]
