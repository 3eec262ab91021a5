"""`tryon products import`: a shop's catalog (a folder of photos + a styles.csv-like labels file) into
the service's database, the way `POST /v1/products` imports one product.

    tryon products import --images ../shared/data/fashion_products/images \\
        --labels ../shared/data/fashion_products/styles.csv --limit 300 [--shop "my shop" | --key tyk_…]

Each row's photo is `<id>.<jpg|png|webp…>` in the folder. The rows go through the service's own code
(`tryon.services.products`, not HTTP) into the database the service uses (TRYON_DATABASE_URL, or
the SQLite file and blobs in TRYON_DATA_DIR). A row that cannot be used is refused with its reason
and the import goes on; the same product id again updates the product. At the end a table says
what was kept and refused (`--report FILE` writes every refusal as JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tryon.errors import InputError

DEFAULT_SHOP = "tryon shop"             # The client owner that holds CLI imports without --key.


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "products", help="import a shop's products (photos + labels)", description=__doc__.split("\n\n")[0]
    )
    verbs = parser.add_subparsers(dest="products_command", metavar="ACTION", required=True)
    imp = verbs.add_parser("import", help="import a folder of product photos with a labels CSV")
    imp.add_argument("--images", required=True, type=Path, help="folder of photos named <id>.<ext>")
    imp.add_argument("--labels", required=True, type=Path, help="CSV with an `id` column and catalog attributes")
    imp.add_argument("--limit", type=int, help="import only the first N rows")
    owner = imp.add_mutually_exclusive_group()
    owner.add_argument("--shop", default=DEFAULT_SHOP, help=f"the shop that owns them (default {DEFAULT_SHOP!r})")
    owner.add_argument("--key", help="a shop API key: its owner owns them (as with POST /v1/products)")
    imp.add_argument("--report", type=Path, help="write the report (every refusal with its reason) as JSON")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)


def _owner_of_key(database: Any, key: str) -> str:
    from tryon.db import repositories as repo

    with database.sessions() as session:
        row = repo.find_api_key(session, key=key.strip())
        if row is None:
            raise InputError("--key: the API key is invalid or has been revoked")
        if not {"shop", "designer", "admin"} & row.scope_set:
            raise InputError(f"--key: the key has scopes {row.scopes!r}; importing products needs 'shop'")
        return str(row.owner_id)


def run_import(args: argparse.Namespace) -> int:
    from tryon.config import get_settings
    from tryon.db.blobs import BlobStore
    from tryon.db.engine import Database
    from tryon.db.migrate import upgrade_to_head
    from tryon.services import products

    if not args.images.is_dir():
        raise InputError(f"--images {args.images}: not a folder")
    if not args.labels.is_file():
        raise InputError(f"--labels {args.labels}: no such file")
    if not args.shop.strip():
        raise InputError("--shop must not be empty")
    settings = get_settings()
    database = Database.from_settings(settings)
    try:
        upgrade_to_head(database.engine)
        owner_id = _owner_of_key(database, args.key) if args.key else products.shop_owner(database, name=args.shop)
        report = products.import_catalog(
            database,
            BlobStore(settings.data_dir / "blobs"),
            owner_id=owner_id,
            images=args.images,
            labels=args.labels,
            limit=args.limit,
            progress=not args.no_progress,
        )
    finally:
        database.dispose()
    print(report.format())
    if args.report is not None:
        args.report.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
        print(f"report: {args.report}")
    return 0
