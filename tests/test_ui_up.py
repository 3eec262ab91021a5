"""`tryon up`: the API and the storefront start together on free ports, answer their health checks,
print both URLs, and stop cleanly on SIGTERM; a taken port is one readable line, before anything
starts."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from ui_helpers import free_port, read_until, start_tryon_up, up_env

from tryon.commands.up import local_url, streamlit_command
from tryon.config import Settings


def test_up_serves_api_and_storefront_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    proc = start_tryon_up(tmp_path, port, ui_port)
    seen: list[str] = []
    try:
        read_until(proc, "Press Ctrl-C", seen)
        text = "".join(seen)
        assert f"tryon API:        http://127.0.0.1:{port}" in text
        assert f"tryon storefront: http://127.0.0.1:{ui_port}" in text
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json() == {"status": "ok"}
        assert (tmp_path / "data" / "tryon.sqlite3").is_file()
        assert httpx.get(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=30).text == "ok"
        page = httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
        # Images through the storefront's server must not break (see ui/server.py).
        favicon = httpx.get(f"http://127.0.0.1:{ui_port}/favicon.png", headers={"Accept-Encoding": "gzip"}, timeout=30)
        assert favicon.status_code == 200 and favicon.content.startswith(b"\x89PNG")
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(seen) + rest
    assert "stopping" in rest
    for p in (port, ui_port):  # Both servers are gone.
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", p)) != 0


def test_up_refuses_a_taken_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "tryon.cli", "up", "--port", str(free_port()), "--ui-port", str(port)],
            env=up_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0] and "--ui-port" in lines[0]
    assert "starting the API" not in r.stdout  # Refused before anything started.


def test_ui_verb_serves_the_storefront_against_a_given_api(tmp_path: Path) -> None:
    ui_port = free_port()
    api_url = f"http://127.0.0.1:{free_port()}"  # Nothing listens there: the storefront starts anyway.
    proc = subprocess.Popen(
        [sys.executable, "-m", "tryon.cli", "ui", "--ui-port", str(ui_port), "--api-url", api_url],
        env=up_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    try:
        read_until(proc, "tryon storefront:", seen)
        assert f"http://127.0.0.1:{ui_port}  (API: {api_url})" in "".join(seen)
        assert httpx.get(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=30).text == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(seen) + rest
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", ui_port)) != 0
    bad = subprocess.run(
        [sys.executable, "-m", "tryon.cli", "ui", "--api-url", "ftp://x"], env=up_env(tmp_path), cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 1 and "--api-url must be an http(s) URL" in bad.stderr


def test_local_urls_and_the_ui_server_command() -> None:
    assert local_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert local_url("::1", 8501) == "http://[::1]:8501"
    command = streamlit_command(Path("ui/app.py"), "127.0.0.1", 8501, max_upload_bytes=Settings().max_upload_bytes)
    assert command[1:4] == ["-m", "ui.server", "run"] and "--server.headless=true" in command
    # The uploaders take what the API takes (15 MiB by default), not Streamlit's 200 MB.
    assert "--server.maxUploadSize=15" in command
    assert "--server.maxUploadSize=2" in streamlit_command(Path("ui/app.py"), "127.0.0.1", 8501, max_upload_bytes=2**21)
