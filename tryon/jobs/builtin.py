"""Job types that need no model: used by the fault tests, the load benchmark and operators."""

from __future__ import annotations

import time
from typing import Any

from tryon.errors import InputError
from tryon.jobs.registry import JobContext, JobRegistry

MAX_SLEEP_STEPS = 10_000


def sleep_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`debug.sleep`: `steps` steps of `seconds` each, reporting progress after each (a stand-in for
    a slow pipeline). Not reachable over HTTP."""
    steps = payload.get("steps", 1)
    seconds = payload.get("seconds", 0.0)
    if not isinstance(steps, int) or not 1 <= steps <= MAX_SLEEP_STEPS:
        raise InputError(f"steps must be an integer in 1..{MAX_SLEEP_STEPS}")
    if not isinstance(seconds, int | float) or not 0 <= seconds <= 60:
        raise InputError("seconds must be a number in 0..60")
    for step in range(steps):
        time.sleep(seconds)
        ctx.progress((step + 1) / steps, f"step {step + 1} of {steps}")
    return {"steps": steps, "attempt": ctx.attempt}


def register_builtin_job_types(registry: JobRegistry) -> None:
    registry.register("debug.sleep", sleep_job, description="sleep in steps, reporting progress (tests, benchmarks)")
