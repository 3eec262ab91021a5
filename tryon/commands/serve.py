"""`tryon serve` (the HTTP API) and `tryon worker` (job workers for a shared queue).

    tryon serve [--host 127.0.0.1] [--port 8000] [--workers 1]
    tryon worker [--threads 1]              # one per GPU; with TRYON_REDIS_URL (or a shared data dir)

Settings come from TRYON_* variables / .env (see tryon.config). Logs are JSON lines on stderr with
request ids (`--log-format text` for people).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from tryon.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTP API",
        description=(
            "Run the HTTP API (uvicorn). It migrates the database at start-up and, unless TRYON_REDIS_URL "
            "is set, runs the job workers in-process. Settings: TRYON_* environment variables."
        ),
    )
    parser.add_argument("--host", default=None, help="address to listen on (default TRYON_API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default TRYON_API_PORT, 8000)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument("--log-format", choices=["json", "text"], default="json", help="log lines (default json)")
    parser.set_defaults(func=run_serve)


def register_worker(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run job workers (for RedisHuey / several processes)",
        description=(
            "Run job workers in the foreground until Ctrl-C / SIGTERM: they take jobs from the queue "
            "(Redis when TRYON_REDIS_URL is set, else the SQLite queue in TRYON_DATA_DIR), and requeue "
            "the jobs of workers that died. Run one per GPU."
        ),
    )
    parser.add_argument("--threads", type=int, default=1, help="job threads in this process (default 1)")
    parser.add_argument("--log-format", choices=["json", "text"], default="json", help="log lines (default json)")
    parser.set_defaults(func=run_worker)


def uvicorn_log_config(level: str, fmt: str) -> dict[str, Any]:
    """Logging for uvicorn and every server process it starts: our formatter on stderr."""
    formatter: dict[str, Any] = (
        {"()": "tryon.api.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},  # Our request log replaces it.
        },
    }


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tryon.config import get_settings

    settings = get_settings()
    host = args.host or settings.api_host
    port = settings.api_port if args.port is None else args.port
    if not 1 <= port <= 65535:
        raise InputError(f"--port must be in 1..65535, got {port}")
    if args.workers < 1:
        raise InputError("--workers must be >= 1")
    level = "INFO" if args.verbose else settings.log_level
    print(f"tryon API on http://{host}:{port} (docs at /docs); data in {settings.data_dir}", flush=True)
    uvicorn.run(
        "tryon.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        access_log=False,
        log_config=uvicorn_log_config(level, args.log_format),
        proxy_headers=False,  # Our own client_address trusts only TRYON_TRUSTED_PROXIES.
    )
    if args.workers == 1:  # Then the in-process job workers ran in this process.
        from tryon.jobs.queue import exit_now_if_jobs_linger

        exit_now_if_jobs_linger()
    return 0


def run_worker(args: argparse.Namespace) -> int:
    from tryon.api.logs import configure_logging
    from tryon.api.runtime import build_runtime
    from tryon.config import get_settings

    if args.threads < 1:
        raise InputError("--threads must be >= 1")
    settings = get_settings()
    configure_logging("INFO" if args.verbose else settings.log_level, json_lines=args.log_format == "json")
    runtime = build_runtime(settings)
    runtime.start(in_process_workers=0)  # Migrations only; the consumer runs in the foreground below.
    log.info(
        "tryon worker: %d thread(s) on the %s queue; job kinds: %s",
        args.threads,
        runtime.queue.backend,
        ", ".join(runtime.registry.kinds()),
    )
    from tryon.jobs.queue import exit_now_if_jobs_linger

    try:
        runtime.queue.run_consumer(args.threads)
    finally:
        runtime.close()
    exit_now_if_jobs_linger()
    return 0
