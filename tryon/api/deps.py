"""Typed dependencies: the runtime, a database session, the caller (with scope checks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from tryon.api.auth import Principal, authenticate, require
from tryon.api.errors import ApiError
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


def get_principal(
    runtime: RuntimeDep,
    session: SessionDep,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> Principal:
    authorization = request.headers.get("authorization") if bearer is None else f"Bearer {bearer.credentials}"
    principal = authenticate(session, api_key=api_key, authorization=authorization)
    session.rollback()                  # End the read: no transaction stays open while the route works.
    runtime.rate_limiter.check(f"owner:{principal.owner_id}")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_optional_principal(
    runtime: RuntimeDep,
    session: SessionDep,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> Principal | None:
    """The caller when credentials are sent (checked like everywhere: 401 when they are bad), else None."""
    if not api_key and "authorization" not in request.headers:
        return None
    return get_principal(runtime, session, api_key, bearer, request)


OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]


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
