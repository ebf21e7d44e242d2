"""The bounded map under the verification caches: never over its size, oldest insertion out first."""

from __future__ import annotations

from service.bounded import FifoMap


def test_a_full_map_drops_its_oldest_insertion() -> None:
    fifo: FifoMap[str, int] = FifoMap(3)
    for n, key in enumerate("abcd"):
        fifo.put(key, n)
    assert fifo.items == {"b": 1, "c": 2, "d": 3}
    fifo.put("b", 10)  # replacing keeps the place: "b" is still the oldest
    fifo.put("e", 4)
    assert fifo.items == {"c": 2, "d": 3, "e": 4}


def test_popped_and_reinserted_keys_never_take_the_map_over_its_size() -> None:
    fifo: FifoMap[int, int] = FifoMap(4)
    for n in range(1_000):
        fifo.put(n % 7, n)
        if n % 3 == 0:
            assert fifo.pop(n % 7) == n
        assert len(fifo) <= 4
    assert fifo.pop(12345) is None


def test_a_map_of_size_zero_holds_nothing() -> None:
    fifo: FifoMap[str, int] = FifoMap(0)
    fifo.put("a", 1)
    assert len(fifo) == 0
    assert fifo.pop("a") is None
