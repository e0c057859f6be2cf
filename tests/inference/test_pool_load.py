"""A model's first load survives callers that give up: the analyzer budget is shorter than a real load."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from app.inference.pool import ResourcePool
from tests.support.waiting import eventually


async def test_a_load_is_not_restarted_by_callers_that_time_out(coco_models_dir: Path) -> None:
    # given a real detector whose load + batch calibration (1, 2, 4, 8) takes longer than one frame's budget
    async with ResourcePool(coco_models_dir, builtin_vad=False, max_wait_ms=1, max_batch=8) as pool:
        item = np.zeros((3, 416, 416), np.float32)
        # when frame after frame gives up on its inference after 0.6 s (the runner's per-frame timeout)
        timeouts = 0

        async def served() -> list[np.ndarray] | None:  # the outputs' list: truthy, where an array is not
            nonlocal timeouts
            try:
                return await asyncio.wait_for(pool.infer("yolov3-tiny", item), 0.6)
            except TimeoutError:
                timeouts += 1
                return None

        (out,) = await eventually(served, 60, interval=0, what=lambda: f"a frame served ({timeouts} t/o)")
        # then the one load begun by the first caller completes and a later frame is served in time
        # (before, each timeout cancelled the load and the next frame began it again: never served)
        assert out is not None and out.shape == (2535, 85), timeouts
        assert timeouts >= 1
        assert pool.stats("yolov3-tiny")[0]["loads"] == 1
