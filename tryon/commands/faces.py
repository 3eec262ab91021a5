"""`tryon faces reproject`: after the face generator was replaced, project the stored faces again.

A face's latent only means that face under the generator that made it (the latent records the
generator's sha256). This queues a `face.project` job for every stored face whose latent was made
with another generator (from its aligned photo, which is kept); the service's job workers (or
`tryon worker`) run them, and each face reads "projecting" until its job is done. Edits made
earlier stay as they were.

    tryon faces reproject --dry-run    # how many faces would be projected again
    tryon faces reproject
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "faces", help="maintenance of stored faces (re-projection after a model change)",
        description=__doc__.split("\n\n")[0],
    )
    verbs = parser.add_subparsers(dest="faces_command", metavar="ACTION", required=True)
    reproject = verbs.add_parser("reproject", help="queue projection jobs for faces made with another face generator")
    reproject.add_argument("--dry-run", action="store_true", help="only count them")
    reproject.set_defaults(func=run_reproject)


def run_reproject(args: argparse.Namespace) -> int:
    from tryon.api.runtime import build_runtime
    from tryon.config import get_settings
    from tryon.db import repositories as repo
    from tryon.db.migrate import upgrade_to_head
    from tryon.db.models import JobKind
    from tryon.face.latent import FaceLatent
    from tryon.services.face import FaceService

    settings = get_settings()
    current = FaceService.from_settings(settings).models().generator_sha256
    runtime = build_runtime(settings)
    try:
        upgrade_to_head(runtime.database.engine)
        stale = []
        with runtime.database.sessions() as session:
            for face in repo.projected_faces(session):
                assert face.latent_sha256 is not None
                made_with = FaceLatent.from_bytes(runtime.blobs.get(face.latent_sha256)).meta.get("generator_sha256")
                if made_with != current:
                    stale.append((face.id, face.owner_id))
        print(f"{len(stale)} face(s) were projected with another face generator than {current[:12]}…")
        if args.dry_run or not stale:
            return 0
        for face_id, owner_id in stale:
            job, _ = runtime.queue.submit(
                owner_id=owner_id, kind=JobKind.FACE_PROJECT, payload={"face_id": face_id}, capped=False
            )
            with runtime.database.sessions.begin() as session:
                row = repo.get_face(session, face_id=face_id, owner_id=owner_id)
                if row is not None:
                    row.projection_job_id, row.status = job.id, "projecting"
        print(f"queued {len(stale)} face.project job(s); the service's job workers (or `tryon worker`) run them")
    finally:
        runtime.close()
    return 0
