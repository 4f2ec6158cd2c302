"""A process-wide cache bounded by bytes: the variants of an ablation run in one worker
process, one after another, and share what they would otherwise compute or read again.

Bounded by bytes, not entries: one full-size volume can weigh hundreds of MB.
Least recently used entries leave first; the newest always stays.

Example:
    >>> cache = ByteBoundedCache(max_bytes=8)
    >>> cache.get_or_make("a", lambda: torch.zeros(2)).tolist()  # 8 bytes
    [0.0, 0.0]
    >>> _ = cache.get_or_make("b", lambda: torch.ones(1))  # 12 bytes: "a" leaves
    >>> "a" in cache, "b" in cache
    (False, True)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np
import torch

Value = TypeVar("Value")


def size_in_bytes(value: object) -> int:
    """Bytes of the tensors and arrays in ``value`` (a tensor, an array or a tuple of them)."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return int(value.nbytes)
    if isinstance(value, tuple):
        return sum(size_in_bytes(item) for item in value)
    return 0


class ByteBoundedCache(Generic[Value]):
    """Values made on first use and kept while their bytes stay under ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._values: OrderedDict[Hashable, Value] = OrderedDict()
        self._bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def get_or_make(self, key: Hashable, make: Callable[[], Value]) -> Value:
        """The value kept for ``key``, made by ``make()`` and kept if there is none."""
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        value = make()
        self._values[key] = value
        self._bytes += size_in_bytes(value)
        while self._bytes > self.max_bytes and len(self._values) > 1:
            _, oldest = self._values.popitem(last=False)
            self._bytes -= size_in_bytes(oldest)
        return value

    def clear(self) -> None:
        """Forget every value."""
        self._values.clear()
        self._bytes = 0
