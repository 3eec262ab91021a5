"""Slow work: a job-type registry, a runner with leases and retries, and a Huey queue.

Huey (SQLite in-process by default, Redis with `tryon worker` at scale) only carries job ids; the
`jobs` table is the source of truth for status, progress, result and error.
"""

from tryon.jobs.registry import JobContext, JobEnv, JobLostError, JobRegistry, JobType

__all__ = ["JobContext", "JobEnv", "JobLostError", "JobRegistry", "JobType"]
