"""Where a face, edit, try-on or garment stands, as its owner sees it: one rule for the four.

    the row holds its result            -> its "done" word (projected, succeeded, transferred)
    else its job failed                 -> "failed" (however it failed: bad input, out of tries,
                                           its worker gone: the job is the truth)
    else its job is running / queued    -> its "running" / "queued" word
    else (no job: not queued yet, or
          its submission was refused)   -> its "no job" word

Only the words differ by kind (`LIFECYCLES`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tryon.db.models import Edit, Face, Garment, Job, JobStatus, TryOn


@dataclasses.dataclass(frozen=True)
class Lifecycle:
    """The words of one kind of row, and how to tell that it holds its result."""

    done: Callable[[Any], bool]         # The row holds its result.
    done_word: str
    running: str                        # Its job is running.
    queued: str                         # Its job waits.
    no_job: Callable[[Any], str]        # Neither a result nor a job.


LIFECYCLES: dict[type, Lifecycle] = {
    # A face's own status ("uploaded", "projecting", "projected") stands until its job fails; a face
    # projected again (`tryon faces reproject`) keeps its old latent but reads "projecting".
    Face: Lifecycle(lambda f: f.status == "projected", "projected", "projecting", "projecting", lambda f: f.status),
    Edit: Lifecycle(lambda e: e.latent_sha256 is not None, "succeeded", "running", "queued", lambda e: "failed"),
    TryOn: Lifecycle(lambda t: t.image_id is not None, "succeeded", "running", "queued", lambda t: "failed"),
    # A garment whose job was refused is deleted (routers/garments.py): one without a job is about to get it.
    Garment: Lifecycle(lambda g: g.status == "transferred", "transferred", "transferring", "queued",
                       lambda g: "queued"),
}


def resource_status(row: Face | Edit | TryOn | Garment, job: Job | None) -> str:
    """The status of `row` (its job: the one that makes its result, None when it has none)."""
    life = LIFECYCLES[type(row)]
    if life.done(row):
        return life.done_word
    if job is None:
        return life.no_job(row)
    return {
        JobStatus.FAILED.value: "failed",
        JobStatus.RUNNING.value: life.running,
        JobStatus.QUEUED.value: life.queued,
        JobStatus.SUCCEEDED.value: life.done_word,
    }[job.status]
