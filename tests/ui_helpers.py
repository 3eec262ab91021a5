"""Helpers for the storefront tests (tests/test_ui*.py, tests/test_e2e_browser.py): a LIVE API on a
free loopback port (uvicorn in a thread, SQLite in a tmp folder, the shipped models), designer keys,
and AppTest runs of the storefront pages against it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from service_helpers import REPO_ROOT, service_settings

from tryon.config import Settings

UI_APP = REPO_ROOT / "ui" / "app.py"
APP_TIMEOUT_S = 120.0                   # One AppTest run (a CPU job such as a projection runs inside it).


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveApi:
    url: str
    settings: Settings
    app: Any

    def routes(self) -> set[str]:
        return set(httpx.get(f"{self.url}/openapi.json", timeout=30).json()["paths"])

    def designer_key(self) -> str:
        """A new API key with the designer and shop scopes, straight into the database."""
        from tryon.db import repositories as repo

        runtime = self.app.state.runtime
        with runtime.database.sessions.begin() as session:
            _, key = repo.create_api_key(session, name="ui test designer", scopes=["designer", "shop"])
        return str(key)


@contextlib.contextmanager
def live_api(tmp_path: Path, **overrides: Any) -> Iterator[LiveApi]:
    """The real app served by uvicorn on 127.0.0.1:<free port> in a thread, until the block ends."""
    import uvicorn

    from tryon.api import create_app

    settings = service_settings(tmp_path, **overrides)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="live-api", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert thread.is_alive() and time.monotonic() < deadline, "the live API did not start"
        time.sleep(0.1)
    try:
        yield LiveApi(url=url, settings=settings, app=app)
    finally:
        server.should_exit = True
        thread.join(30)


def up_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `tryon up` subprocess: data in tmp_path, no TRYON_* of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYON_")}
    env.update(
        TRYON_DATA_DIR=str(tmp_path / "data"),
        TRYON_DEVICE="cpu",
        TRYON_RATE_LIMIT_PER_MINUTE="0",
        TRYON_RATE_LIMIT_PER_ADDRESS_PER_MINUTE="0",  # Every client is on loopback.
        TRYON_SESSIONS_PER_ADDRESS_PER_MINUTE="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_tryon_up(
    tmp_path: Path, port: int, ui_port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`tryon up` on these ports in a subprocess of its own session (stdout+stderr piped, text);
    `env`: more variables (e.g. TRYON_DEMO_CATALOG)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tryon.cli", "up", "--port", str(port), "--ui-port", str(ui_port)],
        env={**up_env(tmp_path), **(env or {})},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Our SIGTERM alone, like a service manager's.
    )


def read_until(proc: subprocess.Popen[str], marker: str, seen: list[str]) -> None:
    """Read `proc`'s output into `seen` until a line has `marker` (AssertionError if it exits first)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"`tryon up` exited ({proc.wait()}) before printing {marker!r}:\n{''.join(seen)}")


def page_test(api: LiveApi, page: str, **state: Any) -> Any:
    """An AppTest of one storefront page (`shop`, `tryon`, `studio`) against `api`, with `state`
    put in st.session_state before the first run."""
    from streamlit.testing.v1 import AppTest

    script = f"import ui.views.{page} as page\npage.render()\n"
    at = AppTest.from_string(script, default_timeout=APP_TIMEOUT_S)
    for key, value in state.items():
        at.session_state[key] = value
    return at


def texts(at: Any, kind: str) -> list[str]:
    """The values of every element of `kind` ("error", "info", "success", "markdown", …) of a run."""
    return [str(el.value) for el in getattr(at, kind)]
