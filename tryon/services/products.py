"""A shop's products: import (one, or a folder + labels CSV in bulk), store, delete.

    photo + attributes --tryon.catalog.products--> PreparedProduct | Refusal
    PreparedProduct --store_product (one transaction)--> products row + two images (photo, prepared)

`POST /v1/products` and `tryon products import` both call `import_product`; the bulk import adds
`import_catalog` (a folder of photos + a styles.csv-like file), which reports every photo kept or
refused and never stops at a bad row. Storage is all-or-nothing: the blob files are written first,
the rows in one transaction; when that fails, the files it wrote that no row refers to are removed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tryon.catalog.products import (
    ID_COLUMN,
    REASONS,
    PreparedProduct,
    ProductAttributes,
    Refusal,
    check_attributes,
    prepare_product,
)
from tryon.db import repositories as repo
from tryon.db.blobs import BlobStore
from tryon.db.engine import Database
from tryon.db.models import ImageKind, JobKind, Owner, OwnerKind, Product
from tryon.errors import InputError
from tryon.progress import progress_bar
from tryon.vision.io import ImageLimits, list_images, load_image

log = logging.getLogger("tryon.products")

PNG = "image/png"


@dataclasses.dataclass(frozen=True)
class ProductImport:
    """A stored product: the row (detached, loaded) and whether this import created it."""

    product: Product
    created: bool


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def import_product(
    database: Database, blobs: BlobStore, *, owner_id: str, photo: Image.Image, attributes: Mapping[str, Any]
) -> ProductImport | Refusal:
    """Check, prepare and store one product of shop `owner_id` (a decoded, upright RGB photo).

    The same shop product id again replaces the product's photo, image and attributes (same row).
    """
    checked = check_attributes(attributes)
    if isinstance(checked, Refusal):
        return checked
    prepared = prepare_product(photo, checked)
    if isinstance(prepared, Refusal):
        return prepared
    return store_product(database, blobs, owner_id=owner_id, prepared=prepared)


def store_product(
    database: Database, blobs: BlobStore, *, owner_id: str, prepared: PreparedProduct
) -> ProductImport:
    """Write a prepared product in one transaction (insert, or update by the shop's product id)."""
    photo_data, image_data = _png(prepared.photo), _png(prepared.image)
    attrs: ProductAttributes = prepared.attributes
    for attempt in range(2):  # A concurrent first import of the same id: the retry updates its row.
        try:
            with database.sessions.begin() as session:
                photo = repo.create_image(
                    session, blobs=blobs, owner_id=owner_id, data=photo_data, media_type=PNG,
                    width=prepared.photo.width, height=prepared.photo.height, kind=ImageKind.PRODUCT_PHOTO,
                )  # fmt: skip
                image = repo.create_image(
                    session, blobs=blobs, owner_id=owner_id, data=image_data, media_type=PNG,
                    width=prepared.image.width, height=prepared.image.height, kind=ImageKind.PRODUCT_IMAGE,
                )  # fmt: skip
                row, created, dropped = repo.upsert_product(
                    session,
                    owner_id=owner_id,
                    shop_product_id=attrs.product_id,
                    name=attrs.name[:200],
                    attributes=attrs.values,
                    labels=prepared.labels,
                    fields=prepared.fields,
                    photo_image_id=photo.id,
                    image_id=image.id,
                    prep=prepared.prep,
                )
            with database.sessions() as session:
                repo.purge_blob_files(session, blobs=blobs, shas=dropped)
            return ProductImport(product=row, created=created)
        except IntegrityError:
            _forget_unrecorded(database, blobs, photo_data, image_data)
            if attempt == 1:
                raise
        except BaseException:
            _forget_unrecorded(database, blobs, photo_data, image_data)
            raise
    raise AssertionError("unreachable")


def _forget_unrecorded(database: Database, blobs: BlobStore, *datas: bytes) -> None:
    """After a failed transaction: remove the blob files it wrote that no row records."""
    from tryon.db.blobs import sha256_hex

    with database.sessions() as session:
        repo.purge_blob_files(session, blobs=blobs, shas=[sha256_hex(d) for d in datas])


def delete_product(database: Database, blobs: BlobStore, *, owner_id: str, product_id: str) -> bool:
    """Delete the shop's product with its images (their blob files too, unless shared). False when
    the shop has no such product."""
    with database.sessions.begin() as session:
        dropped = repo.delete_product(session, product_id=product_id, owner_id=owner_id)
    if dropped is None:
        return False
    with database.sessions() as session:
        repo.purge_blob_files(session, blobs=blobs, shas=dropped)
    return True


def shop_owner(database: Database, *, name: str) -> str:
    """The id of the client owner named `name` (the shop a CLI import or the demo shop fills),
    made on first use."""
    with database.sessions.begin() as session:
        found = session.scalar(
            select(Owner.id)
            .where(Owner.kind == OwnerKind.CLIENT.value, Owner.name == name)
            .order_by(Owner.created_at, Owner.id)
            .limit(1)
        )
        if found is not None:
            return str(found)
        return repo.create_owner(session, kind=OwnerKind.CLIENT, name=name).id


# ----------------------------------------------------------------------------------------------------
# Bulk import: a folder of photos + a labels CSV.


@dataclasses.dataclass
class ImportReport:
    """What a bulk import did: per row, kept (created / updated) or refused with the reason."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    refused: list[dict[str, str]] = dataclasses.field(default_factory=list)  # {"id", "reason", "detail"}.
    kept_by_view: Counter[str] = dataclasses.field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return self.created + self.updated

    def to_json(self) -> dict[str, Any]:
        by_reason = Counter(r["reason"] for r in self.refused)
        return {
            "rows": self.rows,
            "kept": self.kept,
            "created": self.created,
            "updated": self.updated,
            "kept_by_view": dict(sorted(self.kept_by_view.items())),
            "refused": len(self.refused),
            "refused_by_reason": dict(by_reason.most_common()),
            "reasons": {r: REASONS[r] for r in by_reason},
            "refusals": self.refused,
        }

    def format(self) -> str:
        """The table printed at the end of an import."""
        lines = [f"{self.rows} rows: {self.kept} kept ({self.created} new, {self.updated} updated), "
                 f"{len(self.refused)} refused"]
        for view, n in sorted(self.kept_by_view.items()):
            lines.append(f"  kept {view:<14} {n:>6}")
        for reason, n in Counter(r["reason"] for r in self.refused).most_common():
            lines.append(f"  refused {reason:<16} {n:>6}  {REASONS[reason]}")
        return "\n".join(lines)


def read_catalog_rows(labels: str | os.PathLike[str]) -> list[dict[str, str]]:
    """A styles.csv-like file -> its rows (UTF-8, undecodable bytes replaced; the header names the
    attributes). InputError when the file is missing, empty or has no `id` column."""
    path = Path(labels)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(f"--labels {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"--labels {path}: not readable ({exc.strerror or exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lstrip("\ufeff") for h in (reader.fieldnames or [])]
    if not header:
        raise InputError(f"--labels {path}: the file is empty")
    if ID_COLUMN not in header:
        raise InputError(f"--labels {path}: no {ID_COLUMN!r} column (the shop's product id); columns: {header}")
    reader.fieldnames = header
    rows = []
    for record in reader:
        extra = record.pop(None, None)
        if extra:  # A stray comma in the last column (e.g. a product name): keep the text in it.
            record[header[-1]] = ",".join([record.get(header[-1]) or "", *extra])
        if any((v or "").strip() for v in record.values()):
            rows.append({k: v or "" for k, v in record.items()})
    return rows


def import_catalog(
    database: Database,
    blobs: BlobStore,
    *,
    owner_id: str,
    images: str | os.PathLike[str],
    labels: str | os.PathLike[str],
    limit: int | None = None,
    progress: bool = True,
    on_row: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import the rows of `labels` whose photo is in `images` (`<id>.<ext>`, searched recursively),
    in file order, at most `limit` rows. Every row is kept or refused (missing_file, unreadable, the
    attribute and photo reasons of tryon.catalog.products); nothing stops the run but a bad folder or
    labels file. `on_row(done, total)` is called after each row (a background job's progress)."""
    root = Path(images)
    if not root.is_dir():
        raise InputError(f"--images {root}: not a folder")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    rows = read_catalog_rows(labels)
    if limit is not None:
        rows = rows[:limit]
    by_stem: dict[str, Path] = {}
    for path in list_images(root):
        by_stem.setdefault(path.stem, path)
    report = ImportReport()
    bar = progress_bar(len(rows), "products", unit="product", enabled=progress)
    for k, row in enumerate(rows):
        product_id = (row.get(ID_COLUMN) or "").strip()
        outcome = _import_row(database, blobs, owner_id=owner_id, row=row, path=by_stem.get(product_id))
        report.rows += 1
        if isinstance(outcome, Refusal):
            report.refused.append({"id": product_id, "reason": outcome.reason, "detail": outcome.detail})
        else:
            report.created += outcome.created
            report.updated += not outcome.created
            report.kept_by_view[outcome.product.view] += 1
        bar.update(1)
        bar.set_postfix(kept=report.kept, refused=len(report.refused), refresh=False)
        if on_row is not None:
            on_row(k + 1, len(rows))
    bar.close()
    return report


def _import_row(
    database: Database, blobs: BlobStore, *, owner_id: str, row: Mapping[str, str], path: Path | None
) -> ProductImport | Refusal:
    checked = check_attributes(row)
    if isinstance(checked, Refusal):
        return checked
    if path is None:
        return Refusal("missing_file", f"no photo named {checked.product_id}.<jpg|png|webp…> in the images folder")
    try:
        photo = load_image(path, limits=ImageLimits(), name=path.name)
    except (InputError, OSError) as exc:
        return Refusal("unreadable", str(exc))
    prepared = prepare_product(photo, checked)
    if isinstance(prepared, Refusal):
        return prepared
    return store_product(database, blobs, owner_id=owner_id, prepared=prepared)


# ----------------------------------------------------------------------------------------------------
# The demo shop: real products for a fresh `tryon up`.

DEMO_SHOP_NAME = "tryon demo shop"
DEMO_IDEMPOTENCY_KEY = "demo-shop-import"    # One demo import per database, however often the service starts.


def demo_catalog_files(folder: str | os.PathLike[str]) -> tuple[Path, Path] | None:
    """(images folder, labels file) of a demo catalog (`images/` + `styles.csv`), None when absent."""
    root = Path(folder)
    images, labels = root / "images", root / "styles.csv"
    return (images, labels) if images.is_dir() and labels.is_file() else None


def demo_import_job(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """`products.import_demo`: payload {"images", "labels", "limit"} -> the import report (no refusals list)."""
    report = import_catalog(
        ctx.env.database,
        ctx.env.blobs,
        owner_id=ctx.owner_id,
        images=str(payload["images"]),
        labels=str(payload["labels"]),
        limit=int(payload["limit"]),
        progress=False,
        on_row=lambda done, total: ctx.progress(done / max(total, 1), f"imported {done} of {total} products"),
    )
    summary = report.to_json()
    summary.pop("refusals")
    log.info("demo shop: %s", report.format().splitlines()[0])
    return summary


def start_demo_shop(database: Database, queue: Any, *, folder: str | os.PathLike[str], limit: int) -> str | None:
    """Queue the demo shop's import when the products table is empty and the catalog is there.
    Returns the job id, or None when nothing was queued (products exist, or no demo catalog)."""
    files = demo_catalog_files(folder)
    if files is None:
        log.info("demo shop: no catalog at %s (images/ + styles.csv): the generated catalog only", folder)
        return None
    with database.sessions() as session:
        if repo.count_products(session) > 0:
            return None
    owner_id = shop_owner(database, name=DEMO_SHOP_NAME)
    images, labels = files
    payload = {"images": str(images.resolve()), "labels": str(labels.resolve()), "limit": int(limit)}
    job, created = queue.submit(
        owner_id=owner_id, kind=JobKind.PRODUCTS_IMPORT_DEMO, payload=payload, idempotency_key=DEMO_IDEMPOTENCY_KEY,
        identity={"demo_shop": True}, capped=False,  # The service's own batch, not a caller's request.
    )  # fmt: skip
    if created:
        log.warning("demo shop: importing %d products from %s in the background (job %s)", limit, folder, job.id)
    return str(job.id)
