"""Where the verification caches import :class:`~service.bounded.FifoMap` from (it moved below the policy engine)."""

from service.bounded import FifoMap

__all__ = ["FifoMap"]
