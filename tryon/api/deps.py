"""Typed dependencies: the runtime, a database session, the client's address (rate limited on every
route), the caller (with scope checks, failed authentication limited per address)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tryon.api.auth import Principal, authenticate, require
from tryon.api.errors import ApiError
from tryon.api.ratelimit import client_address
from tryon.api.runtime import Runtime
from tryon.config import Settings
from tryon.db.models import Scope

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (tyk_...).")
_bearer = HTTPBearer(auto_error=False, description="A shopper session token from POST /v1/sessions (tys_...).")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings_dep(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_db(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.database.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def get_client_address(request: Request) -> str:
    """The client's address (the socket peer, or what a trusted proxy forwarded), worked out once."""
    address: str | None = getattr(request.state, "client_address", None)
    if address is None:
        runtime: Runtime = request.app.state.runtime
        peer = request.client.host if request.client else None
        address = client_address(peer, request.headers.get("x-forwarded-for"), runtime.limits.trusted_proxies)
        request.state.client_address = address
    return address


ClientAddressDep = Annotated[str, Depends(get_client_address)]


def limit_client_address(runtime: RuntimeDep, address: ClientAddressDep) -> None:
    """Every route's first dependency: requests per client address (429 beyond them), so that new
    sessions or unauthenticated routes are no way around the per-caller limit."""
    runtime.limits.per_address.check(address)


def get_principal(
    runtime: RuntimeDep,
    session: SessionDep,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
    address: ClientAddressDep,
) -> Principal:
    limits = runtime.limits
    # An address that has sent too many bad credentials is refused before they are looked up.
    limits.auth_failures_per_address.check_not_exhausted(address)
    authorization = request.headers.get("authorization") if bearer is None else f"Bearer {bearer.credentials}"
    try:
        principal = authenticate(session, api_key=api_key, authorization=authorization)
    except ApiError as exc:
        if exc.status_code == 401 and (api_key or authorization):
            limits.auth_failures_per_address.check(address)  # Counts the failure (429 when none is left).
        raise
    finally:
        session.rollback()              # End the read: no transaction stays open while the route works.
    limits.per_caller.check(f"owner:{principal.owner_id}")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_optional_principal(
    runtime: RuntimeDep,
    session: SessionDep,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
    address: ClientAddressDep,
) -> Principal | None:
    """The caller when credentials are sent (checked like everywhere: 401 when they are bad), else None."""
    if not api_key and "authorization" not in request.headers:
        return None
    return get_principal(runtime, session, api_key, bearer, request, address)


OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]

# `openapi_extra` of a route with OptionalPrincipalDep: credentials are optional (`{}`, no credentials,
# joins the schemes FastAPI lists).
OPTIONAL_AUTH_OPENAPI: dict[str, Any] = {"security": [{}]}


def get_shopper(principal: PrincipalDep) -> Principal:
    require(principal, Scope.SHOP)
    return principal


def get_shop_backend(principal: PrincipalDep) -> Principal:
    """A shop backend: an API key with the `shop` scope (a shopper session has the scope, not a shop)."""
    require(principal, Scope.SHOP)
    if principal.kind != "api_key":
        raise ApiError(
            403, "a shop's products are managed with the shop's API key (X-API-Key with the 'shop' scope), "
            "not with a shopper session"
        )
    return principal


def get_designer(principal: PrincipalDep) -> Principal:
    require(principal, Scope.DESIGNER)
    return principal


def get_admin(principal: PrincipalDep) -> Principal:
    require(principal, Scope.ADMIN)
    return principal


ShopperDep = Annotated[Principal, Depends(get_shopper)]
ShopBackendDep = Annotated[Principal, Depends(get_shop_backend)]
DesignerDep = Annotated[Principal, Depends(get_designer)]
AdminDep = Annotated[Principal, Depends(get_admin)]
