"""Dynamic batching: concurrent requests share one call of a batch function (e.g. one forward pass).

    batcher = DynamicBatcher(generate_batch, max_batch_size=8, max_wait_s=0.005)
    image = batcher.submit(request).result()          # from a thread
    image = await batcher.run(request)                # from a coroutine

One worker thread takes the first waiting item, then keeps collecting until it has
`max_batch_size` items or `max_wait_s` has passed since that first item (items already waiting are
always taken, up to the maximum, even with `max_wait_s=0`), calls `process(items)` once and hands
each caller its own result. So a lone request waits at most `max_wait_s` longer than it would
alone, and under load the batch fills before the wait ends.

If `process` raises for a batch of several items, each item is processed again alone, so one bad
request fails alone instead of taking its neighbours down. Callers that gave up (a cancelled future)
are skipped before their item is processed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class BatcherClosedError(RuntimeError):
    """The batcher was closed before the item was processed."""


@dataclasses.dataclass
class BatchStats:
    """Counters since the batcher was made."""

    batches: int = 0                    # Calls of `process` (fallbacks to single items included).
    items: int = 0                      # Items processed.
    largest: int = 0                    # Largest batch.

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0




class DynamicBatcher(Generic[T, R]):
    """Collects items from many callers into batches for one `process` call each (see module doc)."""

    def __init__(
        self,
        process: Callable[[list[T]], Sequence[R]],             # Items -> one result per item, in order.
        max_batch_size: int,                                   # Most items per call (1 = no batching).
        max_wait_s: float,                                     # Longest wait for more items after the first, s.
        name: str = "batcher",                                 # Thread name and log prefix.
        on_batch: Callable[[int, float], None] | None = None,  # Called with (batch size, seconds).
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.process = process
        self.max_batch_size = max_batch_size
        self.max_wait_s = float(max_wait_s)
        self.name = name
        self.on_batch = on_batch
        self.stats = BatchStats()
        # Items with their futures; None tells the worker to stop.
        self._queue: queue.SimpleQueue[tuple[T, concurrent.futures.Future[R]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"DynamicBatcher({self.name!r}, max_batch_size={self.max_batch_size}, max_wait_s={self.max_wait_s})"

    def submit(self, item: T) -> concurrent.futures.Future[R]:
        """Queue one item; the future gets its result (or the exception `process` raised for it)."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise BatcherClosedError(f"{self.name} is closed")
            if self._thread is None:    # Started on first use: nothing runs until someone asks.
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put((item, future))
        return future

    async def run(self, item: T) -> R:
        """`submit` for coroutines: awaits the result without blocking the event loop. Cancelling
        the await cancels the item if it has not been processed yet."""
        return await asyncio.wrap_future(self.submit(item))

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking items, finish the ones queued, and stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    # ------------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    stopping = True
                    break
                batch.append(entry)
            self._run_batch(batch)
        # Anything queued after the stop marker (a race with close) is failed, not left hanging.
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is not None:
                _, future = entry
                if future.set_running_or_notify_cancel():
                    future.set_exception(BatcherClosedError(f"{self.name} is closed"))

    def _run_batch(self, batch: list[tuple[T, concurrent.futures.Future[R]]]) -> None:
        live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self._call([item for item, _ in live])
        except Exception as exc:
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            log.warning("%s: a batch of %d failed (%s); processing its items one by one", self.name, len(live), exc)
            for item, fut in live:
                try:
                    fut.set_result(self._call([item])[0])
                except Exception as single_exc:
                    fut.set_exception(single_exc)
            return
        for (_, fut), result in zip(live, results, strict=True):
            fut.set_result(result)

    def _call(self, items: list[T]) -> Sequence[R]:
        started = time.perf_counter()
        results = self.process(items)
        seconds = time.perf_counter() - started
        if len(results) != len(items):
            raise RuntimeError(f"{self.name}: process returned {len(results)} results for {len(items)} items")
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.largest = max(self.stats.largest, len(items))
        if self.on_batch is not None:
            try:
                self.on_batch(len(items), seconds)
            except Exception:           # Metrics must never fail a request.
                log.exception("%s: on_batch callback failed", self.name)
        return results
