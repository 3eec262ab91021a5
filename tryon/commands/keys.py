"""`tryon keys`: API keys for shop backends, designers and admins.

    tryon keys create --scope shop --name "shop backend"      # prints the key once
    tryon keys create --scope designer --scope shop --name studio
    tryon keys list
    tryon keys revoke ID_OR_PREFIX

Keys are stored as sha256 digests in the service database (TRYON_DATABASE_URL, or the SQLite file
in TRYON_DATA_DIR); the key itself is shown only when it is made.
"""

from __future__ import annotations

import argparse
from typing import Any

from tryon.errors import InputError

SCOPES = ("shop", "designer", "admin")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys", help="create, list and revoke API keys", description=__doc__.split("\n\n")[0]
    )
    verbs = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = verbs.add_parser("create", help="create a key (shown once)")
    create.add_argument(
        "--scope", action="append", choices=SCOPES, required=True, help="a scope of the key; repeatable"
    )
    create.add_argument("--name", default="api key", help="who or what the key is for")
    create.set_defaults(func=run_create)
    listing = verbs.add_parser("list", help="list keys (without the keys themselves)")
    listing.set_defaults(func=run_list)
    revoke = verbs.add_parser("revoke", help="revoke a key by id or by its shown prefix")
    revoke.add_argument("key_id", metavar="ID_OR_PREFIX")
    revoke.set_defaults(func=run_revoke)


def _database() -> Any:
    from tryon.config import get_settings
    from tryon.db.engine import Database
    from tryon.db.migrate import upgrade_to_head

    database = Database.from_settings(get_settings())
    upgrade_to_head(database.engine)
    return database


def run_create(args: argparse.Namespace) -> int:
    from tryon.db import repositories as repo

    if not args.name.strip():
        raise InputError("--name must not be empty")
    database = _database()
    try:
        with database.sessions.begin() as session:
            row, key = repo.create_api_key(session, name=args.name.strip(), scopes=args.scope)
            scopes, key_id = row.scopes, row.id
    finally:
        database.dispose()
    print(key)
    print(f"(key {key_id}, scopes: {scopes}; store it now: it is not shown again)", flush=True)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from tryon.db import repositories as repo

    database = _database()
    try:
        with database.sessions() as session:
            rows = repo.list_api_keys(session)
            if not rows:
                print("no API keys (make one with: tryon keys create --scope shop --name NAME)")
            for row in rows:
                state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
                print(f"{row.id}  {row.prefix}…  {row.scopes:<20} {state:<18} {used:<26} {row.name}")
    finally:
        database.dispose()
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from tryon.db import repositories as repo

    database = _database()
    try:
        with database.sessions.begin() as session:
            if not repo.revoke_api_key(session, key_id=args.key_id):
                raise InputError(f"no active API key {args.key_id!r} (see `tryon keys list`)")
    finally:
        database.dispose()
    print(f"revoked {args.key_id}")
    return 0
