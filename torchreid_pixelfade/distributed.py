"""The torchrun seam: rank, world size and device from the environment; a process group around a
run; nothing at all for a single process.

``torchrun --nproc_per_node N -m torchreid_pixelfade protect ...`` starts N processes with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set (and ``MASTER_ADDR``/``MASTER_PORT`` for the
rendezvous, across machines with ``--nnodes``). Each rank protects a disjoint shard of the images
on its own device and appends to its own manifest part (``part = rank``); the store merges the
parts, so neither the protectors nor the store know torchrun exists.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Iterator, Sequence, TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process stands in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def context_from_env(environ: dict | None = None) -> DistContext:
    """The :class:`DistContext` torchrun describes in the environment.

    Raises:
        ValueError: for inconsistent values (rank outside the world size).
    """
    environ = os.environ if environ is None else environ
    context = DistContext(rank=int(environ.get("RANK", 0)),
                          world_size=int(environ.get("WORLD_SIZE", 1)),
                          local_rank=int(environ.get("LOCAL_RANK", 0)))
    if not 0 <= context.rank < context.world_size:
        raise ValueError(f"RANK {context.rank} is outside WORLD_SIZE {context.world_size}")
    return context


def rank_device(context: DistContext, device: str | torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when ``device`` is CUDA and the job is
    distributed, else ``device`` itself."""
    device = torch.device(device)
    if context.distributed and device.type == "cuda" and device.index is None:
        return torch.device("cuda", context.local_rank)
    return device


def shard(items: Sequence[T], context: DistContext) -> list[T]:
    """This rank's share of ``items``: every ``world_size``-th item from ``rank`` on (disjoint,
    covering, the same on every rank for the same ``items``)."""
    return list(items[context.rank::context.world_size])


@contextlib.contextmanager
def process_group(context: DistContext, device: str | torch.device) -> Iterator[None]:
    """A process group for the block (NCCL on CUDA, gloo on CPU) with a barrier at its end, so
    every rank leaves it after all ranks finished; a no-op for a single process."""
    if not context.distributed or torch.distributed.is_initialized():
        yield
        return
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend, rank=context.rank,
                                         world_size=context.world_size)
    logger.info("rank %d of %d on %s (%s)", context.rank, context.world_size, device, backend)
    try:
        yield
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def from_rank_zero(value: T, device: str | torch.device = "cpu") -> T:
    """Rank 0's ``value`` on every rank of the current process group (``value`` itself when
    none is initialised); ``value`` must be picklable. ``device`` is this rank's device (NCCL
    sends through it)."""
    if not torch.distributed.is_initialized():
        return value
    holder = [value]
    torch.distributed.broadcast_object_list(holder, src=0, device=torch.device(device))
    return holder[0]
