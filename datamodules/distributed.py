"""Sharding subjects across the processes of a distributed (DDP) run.

Under DDP each process trains on its own share of the training subjects.

- ``subject_sampler``: a ``DistributedSampler`` over the training subjects, for the
  ``tio.Queue``. Its shuffle is seeded from the config, and reshuffled every epoch.
- ``QueueSampler``: the sampler of the queue's own DataLoader. Lightning would otherwise
  put its own ``DistributedSampler`` over the queue, which hands out patches, not
  subjects. It passes Lightning's ``set_epoch`` on to the subject sampler.

Whole-volume validation and test keep Lightning's own sampler, which pads each process
to the same number of volumes. Every process must run as many forward passes as the
others: DDP synchronises buffers in each one. ``lightning_modules.distributed`` drops
the repeated cases.
"""

from __future__ import annotations

from collections.abc import Sized

from torch.utils.data import Dataset, DistributedSampler


def world(trainer: object | None) -> tuple[int, int]:
    """``(world size, rank)`` of the trainer's run; ``(1, 0)`` outside a distributed one."""
    size = getattr(trainer, "world_size", 1) if trainer is not None else 1
    return size, getattr(trainer, "global_rank", 0) if size > 1 else 0


def subject_sampler(
    dataset: Dataset, trainer: object | None, seed: int
) -> DistributedSampler | None:
    """This process's share of the training subjects, or None in a single-process run."""
    size, rank = world(trainer)
    if size == 1:
        return None
    return DistributedSampler(dataset, num_replicas=size, rank=rank, shuffle=True, seed=seed)


class QueueSampler(DistributedSampler):
    """Every patch of this process's queue, in order; Lightning leaves it in place."""

    def __init__(self, queue: Sized, subjects: DistributedSampler) -> None:
        super().__init__(queue, num_replicas=1, rank=0, shuffle=False)
        self.subjects = subjects

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.subjects.set_epoch(epoch)
