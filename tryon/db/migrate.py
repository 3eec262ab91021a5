"""Alembic migrations, run from Python (the API runs `upgrade_to_head` at start-up).

Several processes may start at once (API replicas, workers): the upgrade holds a lock while it runs
(a PostgreSQL advisory lock; a lock file next to a SQLite database), so only one migrates and the
others then find the schema at head.

For developers, a new revision after changing `tryon.db.models`:

    python -m tryon.db.migrate revision "add catalog table"     # autogenerate against a fresh SQLite
    python -m tryon.db.migrate upgrade [URL]                     # default: the configured database
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from tryon.db.engine import create_db_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x7472796F6E             # "tryon": any constant shared by every process of the service.


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for our migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # ConfigParser interpolation.
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None = not migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> str:
    """Migrate the database to the newest revision (a no-op when it is there). Returns the revision."""
    with _migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        command.upgrade(alembic_config(connection=conn), "head")
    revision = current_revision(engine)
    if revision is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return revision


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """An exclusive file lock beside a SQLite database file (PostgreSQL locks inside the transaction)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def schema_differences(engine: Engine) -> list[Any]:
    """What differs between the database's schema and the models (empty when they agree)."""
    from alembic.autogenerate import compare_metadata

    from tryon.db.models import Base

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "revision":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/autogen.sqlite3"
            command.upgrade(alembic_config(url=url), "head")
            command.revision(alembic_config(url=url), message=" ".join(argv[1:]), autogenerate=True)
        return 0
    if argv and argv[0] == "upgrade":
        if len(argv) > 1:
            url = argv[1]
        else:
            from tryon.config import get_settings

            url = get_settings().resolved_database_url
        engine = create_db_engine(url)
        print(f"database at revision {upgrade_to_head(engine)}")
        engine.dispose()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1:]))
