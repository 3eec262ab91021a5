"""The dynamic batcher: batches fill up to the maximum, a lone item waits at most max_wait, results
go back to their own callers, a failing item fails alone, closing fails what is left."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tryon.services.batching import BatcherClosedError, DynamicBatcher


class Recorder:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate

    def __call__(self, items: list[int]) -> list[int]:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.batches.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError(f"negative item in {items}")
        return [i * 10 for i in items]


def test_concurrent_items_share_batches_up_to_the_maximum() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = DynamicBatcher(rec, max_batch_size=4, max_wait_s=0.05, name="t")
    first = batcher.submit(0)  # Taken alone; its process call blocks on the gate...
    while not first.running():
        time.sleep(0.001)
    futures = [batcher.submit(i) for i in range(1, 10)]  # ...while 9 more queue up.
    gate.set()
    assert [f.result(10) for f in [first, *futures]] == [i * 10 for i in range(10)]
    assert sorted(i for batch in rec.batches for i in batch) == list(range(10))
    assert max(len(b) for b in rec.batches) == 4
    assert len(rec.batches) <= 4  # 1 + 9 items in batches of at most 4: [0], [1-4], [5-8], [9].
    assert batcher.stats.items == 10 and batcher.stats.largest == 4
    batcher.close()


def test_a_lone_item_waits_at_most_max_wait() -> None:
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=64, max_wait_s=0.01)
    assert batcher.submit(3).result(10) == 30  # Answered: not stuck waiting for a batch that never fills.
    assert rec.batches == [[3]]
    batcher.close()


def test_no_batching_with_max_size_one() -> None:
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=1, max_wait_s=0.1)
    assert [f.result(10) for f in [batcher.submit(i) for i in range(5)]] == [0, 10, 20, 30, 40]
    assert all(len(b) == 1 for b in rec.batches)
    batcher.close()


def test_a_bad_item_fails_alone() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = DynamicBatcher(rec, max_batch_size=8, max_wait_s=0.05)
    blocker = batcher.submit(100)
    time.sleep(0.02)
    futures = [batcher.submit(i) for i in (1, -1, 2)]
    gate.set()
    assert blocker.result(10) == 1000
    assert futures[0].result(10) == 10 and futures[2].result(10) == 20
    with pytest.raises(ValueError, match="negative"):
        futures[1].result(10)
    batcher.close()


def test_async_callers_and_close() -> None:
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=8, max_wait_s=0.02)

    async def many() -> list[int]:
        return list(await asyncio.gather(*(batcher.run(i) for i in range(6))))

    assert asyncio.run(many()) == [0, 10, 20, 30, 40, 50]
    assert len(rec.batches) < 6  # Concurrent coroutines were batched.
    batcher.close()
    with pytest.raises(BatcherClosedError):
        batcher.submit(1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        DynamicBatcher(Recorder(), max_batch_size=0, max_wait_s=0)
    with pytest.raises(ValueError):
        DynamicBatcher(Recorder(), max_batch_size=2, max_wait_s=-1)
