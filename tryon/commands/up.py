"""`tryon up`: the whole product on one machine: the HTTP API (with its in-process job workers, the
shipped models and SQLite in the data dir) and the Streamlit storefront, until Ctrl-C / SIGTERM.

    tryon up [--host 127.0.0.1] [--port 8000] [--ui-port 8501]

The API runs in this process (uvicorn in a thread); the storefront is a `streamlit run ui/app.py`
subprocess pointed at the API with TRYON_UI_API_URL. Both URLs are printed once the API answers
/health and the UI answers its own health check. A designer key for the studio: TRYON_UI_API_KEY,
or paste one made with `tryon keys create --scope designer` into the studio's sidebar.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tryon.errors import InputError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 180.0                 # Longest wait for the API's /health and the UI's health check.
STOP_TIMEOUT_S = 15.0                   # Grace period for each part to stop before it is killed.
UI_HEALTH_PATH = "/_stcore/health"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run the API and the storefront UI together",
        description=(
            "Run the HTTP API (with in-process job workers, the shipped models and SQLite in TRYON_DATA_DIR) "
            "and the Streamlit storefront pointed at it; stop both with Ctrl-C. Settings: TRYON_* variables."
        ),
    )
    parser.add_argument("--host", default=None, help="address of both servers (default TRYON_API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="API port (default TRYON_API_PORT, 8000)")
    parser.add_argument("--ui-port", type=int, default=None, help="storefront port (default TRYON_UI_PORT, 8501)")
    parser.add_argument("--log-format", choices=["json", "text"], default="text", help="API log lines (default text)")
    parser.set_defaults(func=run_up)


def register_ui(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="run the storefront UI against an API started elsewhere",
        description=(
            "Run the Streamlit storefront pointed at a running API (TRYON_UI_API_URL or --api-url); "
            "stop it with Ctrl-C. `tryon up` runs the API and the storefront together."
        ),
    )
    parser.add_argument("--host", default=None, help="address to listen on (default TRYON_API_HOST, 127.0.0.1)")
    parser.add_argument("--ui-port", type=int, default=None, help="storefront port (default TRYON_UI_PORT, 8501)")
    parser.add_argument("--api-url", default=None, help="the API (default TRYON_UI_API_URL, else http://127.0.0.1:8000)")
    parser.set_defaults(func=run_ui)


def run_ui(args: argparse.Namespace) -> int:
    from tryon.config import get_settings

    settings = get_settings()
    host = args.host or settings.api_host
    ui_port = settings.ui_port if args.ui_port is None else args.ui_port
    api_url = args.api_url or os.environ.get("TRYON_UI_API_URL") or local_url(settings.api_host, settings.api_port)
    if not api_url.startswith(("http://", "https://")):
        raise InputError(f"--api-url must be an http(s) URL, got {api_url!r}")
    check_port_free(host, ui_port, "--ui-port")
    env = {**os.environ, "TRYON_UI_API_URL": api_url.rstrip("/"), "PYTHONUNBUFFERED": "1"}
    command = streamlit_command(ui_script(), host, ui_port, max_upload_bytes=settings.max_upload_bytes)
    ui = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    ui_url = local_url(host, ui_port)
    try:
        wait_until_healthy(f"{ui_url}{UI_HEALTH_PATH}", alive=lambda: ui.poll() is None and not stop.is_set())
        print(f"tryon storefront: {ui_url}  (API: {api_url})", flush=True)
        while not stop.wait(0.5):
            if ui.poll() is not None:
                raise RuntimeError(f"the storefront stopped unexpectedly (exit code {ui.returncode})")
    except RuntimeError:
        if not stop.is_set():
            raise
    finally:
        _stop_process(ui)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def ui_script() -> Path:
    """The storefront's entry script (ui/app.py of the installed `ui` package)."""
    spec = importlib.util.find_spec("ui")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the storefront package `ui` is not installed: run `pip install -e .` in the repository")
    script = Path(next(iter(spec.submodule_search_locations))) / "app.py"
    if not script.is_file():
        raise InputError(f"the storefront script {script} is missing")
    return script


def check_port_free(host: str, port: int, what: str) -> None:
    """InputError naming the option when `port` is taken (before anything starts)."""
    if not 1 <= port <= 65535:
        raise InputError(f"{what} must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another {what}") from None


def local_url(host: str, port: int) -> str:
    """A URL for `host:port` that works from this machine (0.0.0.0 / :: listen everywhere)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def streamlit_command(script: Path, host: str, port: int, *, max_upload_bytes: int) -> list[str]:
    """`streamlit run` for a server: headless, no telemetry, no file watcher, no error details
    (through ui.server, which fixes Streamlit 1.60's gzip middleware under Starlette >= 1.5).
    max_upload_bytes: the API's upload limit; the storefront's uploaders take (and say) the same, in
    whole MiB (Streamlit's own default is 200 MB)."""
    return [
        sys.executable, "-m", "ui.server", "run", str(script),  # `streamlit run` + a compatibility fix.
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        f"--server.maxUploadSize={max(max_upload_bytes // 2**20, 1)}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--client.showErrorDetails=none",
        "--client.toolbarMode=minimal",
        "--global.developmentMode=false",
        "--logger.level=warning",
    ]  # fmt: skip


def wait_until_healthy(url: str, *, alive: Any, timeout: float = START_TIMEOUT_S) -> None:
    """Poll `url` until it answers 200; RuntimeError when `alive()` turns false or after `timeout` s."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{url} stopped before it was ready")
        try:
            if httpx.get(url, timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


class _ApiThread(threading.Thread):
    """uvicorn in a thread (so that this thread can supervise the UI and own the signals)."""

    def __init__(self, host: str, port: int, log_config: dict[str, Any]) -> None:
        super().__init__(name="tryon-api", daemon=True)
        import uvicorn

        config = uvicorn.Config(
            "tryon.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            access_log=False,
            log_config=log_config,
            proxy_headers=False,  # Our own client_address trusts only TRYON_TRUSTED_PROXIES.
        )
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # SystemExit from uvicorn when it cannot start.
            self.error = exc

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(STOP_TIMEOUT_S)
        if self.is_alive():
            self.server.force_exit = True
            self.join(STOP_TIMEOUT_S)


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_up(args: argparse.Namespace) -> int:
    from tryon.commands.serve import uvicorn_log_config
    from tryon.config import get_settings

    # The demo shop is on for `tryon up` (TRYON_DEMO_SHOP=false turns it off): the API's factory
    # reads the settings again, with it.
    os.environ.setdefault("TRYON_DEMO_SHOP", "true")
    get_settings.cache_clear()
    settings = get_settings()
    host = args.host or settings.api_host
    port = settings.api_port if args.port is None else args.port
    ui_port = settings.ui_port if args.ui_port is None else args.ui_port
    if port == ui_port:
        raise InputError(f"--port and --ui-port must differ (both are {port})")
    check_port_free(host, port, "--port")
    check_port_free(host, ui_port, "--ui-port")
    script = ui_script()
    api_url, ui_url = local_url(host, port), local_url(host, ui_port)
    level = "INFO" if args.verbose else "WARNING"

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    api = _ApiThread(host, port, uvicorn_log_config(level, args.log_format))
    ui: subprocess.Popen[bytes] | None = None
    try:
        print(f"tryon: starting the API (data in {settings.data_dir.resolve()}) …", flush=True)
        if settings.demo_shop and (settings.demo_catalog / "styles.csv").is_file():
            print(f"tryon: demo shop: with no products yet, {settings.demo_catalog_size} are imported from "
                  f"{settings.demo_catalog} in the background (TRYON_DEMO_SHOP=false: none)", flush=True)
        api.start()
        wait_until_healthy(f"{api_url}/health", alive=lambda: api.is_alive() and not stop.is_set())
        env = {**os.environ, "TRYON_UI_API_URL": api_url, "PYTHONUNBUFFERED": "1"}
        # Streamlit's stdout is only its banner (we print the URLs); its log and errors go to stderr.
        command = streamlit_command(script, host, ui_port, max_upload_bytes=settings.max_upload_bytes)
        ui = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        ui_proc = ui
        wait_until_healthy(
            f"{ui_url}{UI_HEALTH_PATH}", alive=lambda: ui_proc.poll() is None and not stop.is_set()
        )
        print(f"tryon API:        {api_url}  (docs: {api_url}/docs)", flush=True)
        print(f"tryon storefront: {ui_url}", flush=True)
        print("Press Ctrl-C to stop both.", flush=True)
        while not stop.wait(0.5):
            if not api.is_alive():
                raise RuntimeError(f"the API stopped unexpectedly{_reason(api.error)}")
            if ui.poll() is not None:
                raise RuntimeError(f"the storefront stopped unexpectedly (exit code {ui.returncode})")
        print("tryon: stopping …", flush=True)
    except RuntimeError:
        if not stop.is_set():  # Else Ctrl-C during start-up: not an error.
            if not api.is_alive() and api.error is not None:
                raise RuntimeError(f"the API could not start{_reason(api.error)}") from None
            raise
        print("tryon: stopping …", flush=True)
    finally:
        if ui is not None:
            _stop_process(ui)
        api.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    from tryon.jobs.queue import exit_now_if_jobs_linger

    exit_now_if_jobs_linger()
    return 0


def _reason(error: BaseException | None) -> str:
    if error is None or (isinstance(error, SystemExit) and not str(error)):
        return " (see the log above)"
    return f" ({type(error).__name__}: {error})"
