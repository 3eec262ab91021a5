"""The storefront's settings: `TRYON_UI_*` environment variables (and `.env`). Built on each call,
never at import time."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class UiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRYON_UI_", env_file=".env", extra="ignore")

    api_url: str = Field("http://127.0.0.1:8000", description="Root URL of the tryon API.")
    api_key: str | None = Field(None, description="Designer API key for the studio (else typed in the sidebar).")
    request_timeout: float = Field(120.0, gt=0, description="Seconds per API request.")
    job_timeout: float = Field(15 * 60.0, gt=0, description="Seconds a page waits for one job (projection, try-on).")
    page_size: int = Field(12, ge=1, le=100, description="Catalog items per page.")
