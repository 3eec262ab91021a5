"""Per-caller rate limits (token buckets in memory). Raises RateLimitedError, which the API answers
with 429 and a Retry-After header."""

from __future__ import annotations

import math
import threading
import time

from tryon.errors import TooManyRequestsError


class RateLimitedError(TooManyRequestsError):
    """Too many requests from one caller; `retry_after` is in seconds."""


class RateLimiter:
    """Token buckets per caller: `per_minute` requests a minute on average, bursts up to that many.

    In memory, per process: with N replicas each allows `per_minute` (put a shared limiter in the
    proxy for a global one).
    """

    def __init__(self, per_minute: int, max_callers: int = 100_000) -> None:
        self.per_minute = per_minute
        self.max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, last refill time)
        self._lock = threading.Lock()

    def check(self, caller: str) -> None:
        """Take one token for `caller`; RateLimitedError (429 with Retry-After) when there is none."""
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                retry_after = max(1, math.ceil((1.0 - tokens) / rate))
                raise RateLimitedError(
                    f"too many requests: at most {self.per_minute} a minute; try again in {retry_after} s",
                    retry_after=retry_after,
                )
            if len(self._buckets) >= self.max_callers and caller not in self._buckets:
                self._buckets.clear()   # Crude bound on memory; a cleared bucket starts full.
            self._buckets[caller] = (tokens - 1.0, now)
