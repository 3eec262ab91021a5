"""Prometheus metrics of one app (its own registry, so several apps in one process do not clash).

With `tryon serve --workers N` each worker process counts its own requests: scrape each replica, or
run one worker per container (the usual layout; see the README).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _CallbackCollector(Collector):
    """Gauges read at scrape time (job counts from the database, queue length)."""

    def __init__(self, read: Callable[[], dict[str, dict[str, float]]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            values = self.read()
        except Exception:               # A scrape must not fail because the database hiccuped.
            log.exception("metrics: could not read job counts")
            return
        jobs = GaugeMetricFamily("tryon_jobs", "Jobs in the jobs table by status", labels=["status"])
        for status, count in values.get("jobs", {}).items():
            jobs.add_metric([status], count)
        yield jobs
        pending = GaugeMetricFamily("tryon_queue_pending", "Messages waiting in the job queue")
        pending.add_metric([], values.get("queue", {}).get("pending", 0))
        yield pending


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tryon_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tryon_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tryon_batch_size",
            "Items per forward pass",
            ["batcher"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "tryon_batch_seconds", "Seconds per forward pass", ["batcher"], registry=self.registry
        )
        self.rate_limited = Counter("tryon_rate_limited", "Requests refused with 429", registry=self.registry)
        self.model_loaded = Gauge("tryon_model_loaded", "1 when the model is loaded", ["model"], registry=self.registry)

    def batch_observer(self, batcher: str) -> Callable[[int, float], None]:
        def observe(size: int, seconds: float) -> None:
            self.batch_size.labels(batcher).observe(size)
            self.batch_seconds.labels(batcher).observe(seconds)

        return observe

    def add_state_reader(self, read: Callable[[], dict[str, dict[str, float]]]) -> None:
        """Read job/queue gauges with `read` at scrape time (replacing an earlier reader)."""
        old = getattr(self, "_state_collector", None)
        if old is not None:
            self.registry.unregister(old)
        self._state_collector = _CallbackCollector(read)
        self.registry.register(self._state_collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
