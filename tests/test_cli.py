"""The `tryon` entry point: verbs, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

from tryon.cli import build_parser, main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tryon.cli", *args], capture_output=True, text=True)


def test_help_lists_the_core_verbs() -> None:
    text = build_parser().format_help()
    for verb in ("generate", "labels", "convert-checkpoint"):
        assert verb in text


def test_building_the_parser_imports_neither_torch_nor_numpy() -> None:
    # Every call builds the whole parser (`tryon --help` too): the verbs import their work when they run.
    code = (
        "import sys\n"
        "from tryon.cli import build_parser\n"
        "verbs = build_parser()._subparsers._group_actions[0].choices\n"
        "assert {'train', 'metrics', 'feature-net', 'face-encoder', 'face-directions'} <= set(verbs), verbs\n"
        "heavy = [m for m in ('torch', 'numpy', 'PIL', 'sqlalchemy', 'fastapi', 'mediapipe') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_verb_prints_help_and_succeeds(capsys) -> None:
    assert main([]) == 0
    assert "usage: tryon" in capsys.readouterr().out


def test_usage_error_is_one_line() -> None:
    proc = run("generate", "--checkpoint", "x", "--seeds", "0", "--out", "y.png", "--no-such-flag")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--no-such-flag" in lines[0]


def test_runtime_error_is_one_line_without_traceback(tmp_path) -> None:
    proc = run("labels", "--checkpoint", str(tmp_path / "missing"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
