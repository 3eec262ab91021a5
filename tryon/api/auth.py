"""Who is calling: an anonymous shopper session (`Authorization: Bearer tys_...`) or an API key
(`X-API-Key: tyk_...`, scopes shop / designer / admin). The rate limit is in tryon.api.ratelimit.

A session acts with the `shop` scope and owns what it uploads; an API key acts for its client owner.
`admin` implies every scope, `designer` implies `shop`. Ownership is enforced by the repositories (lookups by owner).
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.orm import Session

from tryon.api.errors import ApiError
from tryon.db import repositories as repo
from tryon.db.models import Scope, utcnow

_LAST_USED_RESOLUTION_S = 60.0          # `api_keys.last_used_at` is written at most this often.


_IMPLIED: dict[str, set[str]] = {
    Scope.ADMIN.value: {s.value for s in Scope},
    Scope.DESIGNER.value: {Scope.DESIGNER.value, Scope.SHOP.value},
}


@dataclasses.dataclass(frozen=True)
class Principal:
    owner_id: str
    kind: str                           # "session" or "api_key".
    scopes: frozenset[str]
    key_id: str | None = None           # The API key's id (None for sessions).

    def has_scope(self, scope: Scope | str) -> bool:
        """`admin` implies every scope and `designer` implies `shop` (a designer also generates
        outfits, reads its images and uploads garments); `shop` implies nothing else."""
        wanted = scope.value if isinstance(scope, Scope) else str(scope)
        return any(wanted in _IMPLIED.get(have, {have}) for have in self.scopes)


def authenticate(session: Session, *, api_key: str | None, authorization: str | None) -> Principal:
    """Resolve the caller from the headers; ApiError 401 when there are no valid credentials."""
    if api_key:
        return _from_api_key(session, api_key.strip())
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("use 'Authorization: Bearer <session token>' or 'X-API-Key: <key>'")
        if token.startswith(repo.API_KEY_PREFIX):
            return _from_api_key(session, token)
        row = repo.find_session(session, token=token)
        if row is None:
            raise _unauthorized("the session token is invalid or has expired: start a new one with POST /v1/sessions")
        return Principal(owner_id=row.owner_id, kind="session", scopes=frozenset({Scope.SHOP.value}))
    raise _unauthorized(
        "authentication required: get a shopper session token from POST /v1/sessions and send "
        "'Authorization: Bearer <token>', or send 'X-API-Key: <key>'"
    )


def _from_api_key(session: Session, key: str) -> Principal:
    row = repo.find_api_key(session, key=key)
    if row is None:
        raise _unauthorized("the API key is invalid or has been revoked")
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > _LAST_USED_RESOLUTION_S:
        row.last_used_at = now
        session.commit()
    return Principal(owner_id=row.owner_id, kind="api_key", scopes=row.scope_set, key_id=row.id)


def require(principal: Principal, scope: Scope) -> None:
    if not principal.has_scope(scope):
        have = ", ".join(sorted(principal.scopes)) or "none"
        raise ApiError(403, f"this needs the {scope.value!r} scope; the caller has: {have}")


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, headers={"WWW-Authenticate": 'Bearer, ApiKey realm="tryon"'})
