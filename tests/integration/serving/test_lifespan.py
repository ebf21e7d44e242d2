"""What a worker's start-up and shutdown do beyond the background loops (tested where they are)."""

from __future__ import annotations

import gc

from litestar import Litestar


async def test_a_running_worker_keeps_its_start_up_objects_out_of_the_collector(app: Litestar) -> None:
    """The mirrored facts live as long as the worker: full collections do not walk them, and shutdown lets go."""
    assert gc.get_freeze_count() == 0
    async with app.lifespan():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
