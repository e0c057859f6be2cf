"""MicroBatcher on its own: limits, lone requests, shapes, failures, callers that give up."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.inference.batcher import MicroBatcher


class Doubler:
    """A batch function that records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, items: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
        self.batches.append(len(items))
        batch = np.stack(items)
        return [[row * 2] for row in batch]


@pytest.fixture
def executor() -> ThreadPoolExecutor:
    with ThreadPoolExecutor(2) as pool:
        yield pool  # type: ignore[misc]


class TestMicroBatcher:
    async def test_batches_never_exceed_max_batch(self, executor: ThreadPoolExecutor) -> None:
        run = Doubler()
        batcher = MicroBatcher("t", run, executor=executor, max_batch=4, max_wait_ms=50)
        results = await asyncio.gather(*(batcher.submit(np.full(2, i, np.float32)) for i in range(10)))
        await batcher.close()
        assert [float(r[0][0]) for r in results] == [2.0 * i for i in range(10)]
        assert max(run.batches) == 4 and sum(run.batches) == 10

    async def test_a_lone_request_is_served_after_max_wait(self, executor: ThreadPoolExecutor) -> None:
        run = Doubler()
        batcher = MicroBatcher("t", run, executor=executor, max_batch=16, max_wait_ms=1)
        result = await asyncio.wait_for(batcher.submit(np.ones(3, np.float32)), 5)
        await batcher.close()
        np.testing.assert_array_equal(result[0], np.full(3, 2.0))
        assert run.batches == [1]

    async def test_different_shapes_get_separate_batches(self, executor: ThreadPoolExecutor) -> None:
        run = Doubler()
        batcher = MicroBatcher("t", run, executor=executor, max_batch=16, max_wait_ms=20)
        items = [np.ones(2, np.float32), np.ones(3, np.float32), np.ones(2, np.float32)]
        results = await asyncio.gather(*(batcher.submit(x) for x in items))
        await batcher.close()
        assert [r[0].shape for r in results] == [(2,), (3,), (2,)]
        assert sorted(run.batches) == [1, 2]

    async def test_a_failing_run_fails_every_caller_in_it(self, executor: ThreadPoolExecutor) -> None:
        def explode(items: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
            raise RuntimeError("model crashed")

        batcher = MicroBatcher("t", explode, executor=executor, max_batch=8, max_wait_ms=20)
        results = await asyncio.gather(
            *(batcher.submit(np.ones(1)) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in results)
        # the batcher survives a failed run
        batcher._run = Doubler()  # type: ignore[assignment]
        assert float((await batcher.submit(np.ones(1)))[0][0]) == 2.0
        await batcher.close()

    async def test_a_caller_that_gives_up_does_not_disturb_the_others(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run = Doubler()
        batcher = MicroBatcher("t", run, executor=executor, max_batch=8, max_wait_ms=200)
        gave_up = asyncio.ensure_future(batcher.submit(np.zeros(1)))
        stays = asyncio.ensure_future(batcher.submit(np.ones(1)))
        await asyncio.sleep(0)  # let both enqueue
        gave_up.cancel()
        result = await asyncio.wait_for(stays, 5)
        await batcher.close()
        assert float(result[0][0]) == 2.0
        assert run.batches == [1]  # the cancelled request never reached the model

    async def test_closed_batcher_refuses_work(self, executor: ThreadPoolExecutor) -> None:
        batcher = MicroBatcher("t", Doubler(), executor=executor)
        await batcher.close()
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(np.ones(1))


class TestWaitPolicy:
    async def test_a_single_camera_never_waits_for_company(self, executor: ThreadPoolExecutor) -> None:
        run = Doubler()
        # max_wait of a minute: any wait for company would time the test out
        batcher = MicroBatcher("t", run, executor=executor, max_batch=16, max_wait_ms=60_000)
        for i in range(5):
            out = await asyncio.wait_for(batcher.submit(np.full(1, i, np.float32)), 10)
            assert float(out[0][0]) == 2.0 * i
        await batcher.close()
        assert run.batches == [1] * 5
