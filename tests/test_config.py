import pytest
from pydantic import ValidationError

from tryon.config import Settings


def test_settings_read_tryon_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("TRYON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRYON_API_PORT", "9001")
    s = Settings()
    assert s.data_dir == tmp_path and s.api_port == 9001
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'tryon.sqlite3'}"
    monkeypatch.setenv("TRYON_DATABASE_URL", "postgresql://u@localhost/tryon")
    assert Settings().resolved_database_url == "postgresql://u@localhost/tryon"


def test_settings_reject_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRYON_DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device"):
        Settings()
    monkeypatch.setenv("TRYON_DEVICE", "cpu")
    monkeypatch.setenv("TRYON_OPS_IMPL", "fast")
    with pytest.raises(ValidationError):
        Settings()


def test_importing_tryon_has_no_side_effects() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tryon, tryon.cli, tryon.config, tryon.nn, tryon.ops; "
        "from tryon.ops import _dispatch; "
        "assert not _dispatch.backends() and not _dispatch.build_failures(); "
        "assert 'tryon.ops._fused' not in sys.modules; "
        "assert not tryon.config.get_settings.cache_info().currsize"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
