"""POST /v1/sessions and DELETE /v1/sessions/current (anonymous shopper sessions), /v1/keys (API keys,
admin scope)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, status

from tryon.api.deps import AdminDep, ClientAddressDep, RuntimeDep, SessionDep, ShopperDep
from tryon.api.errors import ApiError, error_docs, not_found
from tryon.api.retention import delete_owner_data
from tryon.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, SessionPublic
from tryon.db import repositories as repo
from tryon.db.models import ApiKey

router = APIRouter(prefix="/v1", tags=["auth"])


@router.post("/sessions", status_code=status.HTTP_201_CREATED, response_model=SessionPublic, responses=error_docs(429))
def create_session(address: ClientAddressDep, runtime: RuntimeDep, session: SessionDep) -> SessionPublic:
    """Start an anonymous shopper session. Send the token as `Authorization: Bearer <token>`; the
    session owns what it uploads, and nobody else can see or delete it. New sessions are limited per
    client address (`TRYON_SESSIONS_PER_ADDRESS_PER_MINUTE`)."""
    runtime.limits.sessions_per_address.check(address)
    row, token = repo.create_session_token(session, ttl=dt.timedelta(hours=runtime.settings.session_ttl_hours))
    session.commit()
    return SessionPublic(token=token, owner_id=row.owner_id, expires_at=row.expires_at)


@router.delete("/sessions/current", status_code=status.HTTP_204_NO_CONTENT, responses=error_docs(401, 403))
def delete_current_session(principal: ShopperDep, runtime: RuntimeDep) -> None:
    """End your anonymous session and delete everything it owns: photos, faces and their latents,
    edits, try-ons, outfits, garments, jobs. The token stops working. (Without this, the data of an
    expired session is deleted `session_data_grace_hours` after it expires.)"""
    if principal.kind != "session":
        raise ApiError(403, "only an anonymous session can delete itself; an API key's data stays with its client")
    delete_owner_data(runtime.database, runtime.blobs, principal.owner_id)


def _key_public(row: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=sorted(row.scope_set),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post(
    "/keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated, responses=error_docs(400, 401, 403)
)
def create_key(body: ApiKeyCreate, admin: AdminDep, session: SessionDep) -> ApiKeyCreated:
    """Create an API key for a new client (admin). The key is in the answer once; only its hash is kept."""
    row, key = repo.create_api_key(session, name=body.name, scopes=body.scopes)
    session.commit()
    return ApiKeyCreated(**_key_public(row).model_dump(), key=key)


@router.get("/keys", response_model=list[ApiKeyPublic], responses=error_docs(401, 403))
def list_keys(admin: AdminDep, session: SessionDep) -> list[ApiKeyPublic]:
    """Every API key (without the keys themselves) (admin)."""
    return [_key_public(row) for row in repo.list_api_keys(session)]


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_docs(401, 403, 404))
def revoke_key(key_id: str, admin: AdminDep, session: SessionDep) -> None:
    """Revoke an API key by id or prefix (admin)."""
    if not repo.revoke_api_key(session, key_id=key_id):
        raise not_found("API key", key_id)
    session.commit()
