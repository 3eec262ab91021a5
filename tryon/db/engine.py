"""Engines and sessions from settings: SQLite (WAL, foreign keys on) by default, PostgreSQL by URL.

Nothing is created at import time: `Database.from_settings(settings)` builds an engine and a session
factory, and `Database.dispose()` closes them.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from tryon.config import Settings

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000         # Writers wait this long for the lock instead of failing.


def normalize_url(url: str | URL) -> URL:
    """`postgresql://` and `postgres://` mean psycopg 3 (the driver we install); others as given."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_db_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for `url`. SQLite files get WAL mode, foreign keys and a busy timeout on every
    connection, and their parent folder is created."""
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Connections are shared by the API's thread pool and the job threads (one at a time each).
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # FULL: a commit is on disk when it returns, even across a power cut (NORMAL could lose the
        # last commits then); the writes are few (rows, throttled job progress), so it costs little.
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


@dataclasses.dataclass
class Database:
    """An engine and its session factory. Sessions do not expire objects on commit, so rows read in
    a request stay usable after it commits."""

    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_url(cls, url: str | URL, *, echo: bool = False) -> Database:
        engine = create_db_engine(url, echo=echo)
        return cls(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls.from_url(settings.resolved_database_url)

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
