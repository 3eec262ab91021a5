"""One status rule for faces, edits, try-ons and garments (tryon.services.status.resource_status)."""

from __future__ import annotations

import pytest

from tryon.db.models import Edit, Face, Garment, Job, JobStatus, TryOn
from tryon.services.status import resource_status


def job(status: JobStatus) -> Job:
    return Job(id="j", status=status.value)


@pytest.mark.parametrize(
    ("row", "done", "running", "queued", "no_job"),
    [
        (Face(status="projecting"), Face(status="projected"), "projecting", "projecting", "projecting"),
        (Edit(latent_sha256=None), Edit(latent_sha256="ab" * 32), "running", "queued", "failed"),
        (TryOn(image_id=None), TryOn(image_id="i"), "running", "queued", "failed"),
        (Garment(status="transferring"), Garment(status="transferred"), "transferring", "queued", "queued"),
    ],
)
def test_a_row_with_its_result_is_done_else_its_job_says(
    row: object, done: object, running: str, queued: str, no_job: str
) -> None:
    done_word = resource_status(done, None)  # type: ignore[arg-type]
    assert done_word in ("projected", "succeeded", "transferred")
    for state in JobStatus:  # A stored result wins over whatever the job row says.
        assert resource_status(done, job(state)) == done_word  # type: ignore[arg-type]
    assert resource_status(row, job(JobStatus.FAILED)) == "failed"  # type: ignore[arg-type]
    assert resource_status(row, job(JobStatus.RUNNING)) == running  # type: ignore[arg-type]
    assert resource_status(row, job(JobStatus.QUEUED)) == queued  # type: ignore[arg-type]
    assert resource_status(row, None) == no_job  # type: ignore[arg-type]


def test_a_face_without_a_projection_job_reads_its_own_status() -> None:
    assert resource_status(Face(status="uploaded"), None) == "uploaded"
