"""Per-case results from every process of a distributed (DDP) run, each case once.

Under DDP, Lightning splits validation and test volumes across processes and pads each
process to the same count with repeated volumes. ``gather_cases`` gives every process
the cases of all of them, in rank order, keeping the first of each key (the subject).
Every process must call it, or the others wait forever.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch.distributed as dist

Case = TypeVar("Case")


def gather_cases(module: Any, cases: list[Case], key: Callable[[Case], Hashable]) -> list[Case]:
    """``cases`` of every process, each ``key`` once (``cases`` as they are in one process)."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size == 1 or not dist.is_initialized():
        return list(cases)
    gathered: list[list[Case] | None] = [None] * trainer.world_size
    dist.all_gather_object(gathered, list(cases))
    unique: dict[Hashable, Case] = {}
    for case in (case for part in gathered for case in (part or [])):
        unique.setdefault(key(case), case)
    return list(unique.values())
