"""A dictionary bounded in size that forgets its oldest insertion first, in constant time.

It holds the policy engine's decision memo and the verification caches.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FifoMap(Generic[K, V]):
    """At most ``size`` items; inserting a new key into a full map drops the key inserted ``size`` insertions ago.

    The insertion order is a ring of keys beside a plain dict: eight bytes per item, where an ``OrderedDict`` keeps
    a linked node of about sixty, and popping the oldest item of a plain dict rescans the holes that earlier pops
    left at its front (linear in the worst case). A key removed with :meth:`pop` keeps its place in the ring until
    that place is reused, so a key inserted again may be dropped a little early: never is the map over its size.
    """

    __slots__ = ("_next", "_ring", "items", "size")

    def __init__(self, size: int) -> None:
        self.size = max(size, 0)
        self.items: dict[K, V] = {}
        self._ring: list[K] = []
        self._next = 0

    def __len__(self) -> int:
        return len(self.items)

    def put(self, key: K, value: V) -> None:
        """Insert or replace ``key`` (a replaced key keeps its place in the order)."""
        items = self.items
        if key in items:
            items[key] = value
            return
        if not self.size:
            return
        ring = self._ring
        if len(ring) < self.size:
            ring.append(key)
        else:
            items.pop(ring[self._next], None)
            ring[self._next] = key
            self._next = (self._next + 1) % self.size
        items[key] = value

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its value, or None."""
        return self.items.pop(key, None)

    def clear(self) -> None:
        """Remove everything."""
        self.items.clear()
        self._ring.clear()
        self._next = 0
