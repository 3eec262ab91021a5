"""Settings from `TRYON_*` environment variables (and `.env`). Nothing is created at import time:
call `get_settings()` (cached) or build `Settings(...)` directly in tests."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> list[IPNetwork]:
    """`"10.0.0.0/8, 192.168.1.7"` -> networks (a bare address is a /32 or /128); ValueError names a bad one."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)") from None
    return networks


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRYON_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="The one data directory: SQLite file, blobs, job store.")
    database_url: str | None = Field(None, description="Overrides the SQLite database under data_dir.")
    redis_url: str | None = Field(None, description="Switches jobs to Redis (RedisHuey) when set.")
    device: str = Field("auto", description="'auto' (CUDA when available), 'cpu' or 'cuda[:N]'.")
    ops_impl: Literal["auto", "cuda", "cpp", "ref"] = Field("auto", description="Implementation of tryon.ops.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="Fashion rendering: 'auto' = bf16 on CPUs with bf16 instructions, fp32 elsewhere."
    )
    cache_dir: Path | None = Field(None, description="Compiled ops cache (default ~/.cache/tryon).")
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    ui_port: int = Field(8501, ge=1, le=65535)
    max_upload_bytes: int = Field(15 * 2**20, gt=0, description="Largest accepted upload, in bytes.")
    max_upload_pixels: int = Field(40_000_000, gt=0, description="Largest accepted image, in pixels.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Service (tryon.api / tryon.jobs).
    fashion_checkpoint: Path | None = Field(
        None, description="Fashion Generator checkpoint folder; None = tryon/assets/fashion when it exists."
    )
    face_checkpoint: Path | None = Field(
        None, description="Face Generator checkpoint folder; None = tryon/assets/face (+ encoder, directions)."
    )
    catalog_candidates: int = Field(
        16, ge=0, le=256,
        description="Seeds tried per generated catalog item until the fashion feature network reads its category "
        "and colour (items it never reads are left out); 0 = no check.",
    )
    face_project_steps: int = Field(50, ge=0, le=1000, description="Optimisation steps of a face.project job.")
    face_refine_steps: int = Field(
        40, ge=0, le=1000,
        description="Pivotal tuning steps of the face.refine job queued after each projection; 0 = no refinement.",
    )
    job_workers: int | None = Field(
        None, ge=0, description="Job threads inside the API process; None = 2 with SQLite, 0 with Redis."
    )
    job_lease_seconds: float = Field(
        60.0, gt=0, description="A running job whose worker is silent this long is retried."
    )
    job_max_attempts: int = Field(3, ge=1, description="Tries per job before it fails (a worker death is a try).")
    max_active_jobs_per_caller: int = Field(
        4, ge=0, description="Queued + running jobs one caller (session or API key) may have at once; 0 = no cap."
    )
    session_ttl_hours: float = Field(24 * 30, gt=0, description="Lifetime of an anonymous shopper session.")
    session_data_grace_hours: float = Field(
        24.0, ge=0, description="An expired anonymous session's photos and results are deleted this much later."
    )
    retention_sweep_minutes: float = Field(
        60.0, ge=0, description="How often the API deletes the data of expired anonymous sessions; 0 = never."
    )
    rate_limit_per_minute: int = Field(600, ge=0, description="Requests per minute per caller; 0 = no limit.")
    rate_limit_per_address_per_minute: int = Field(
        1200, ge=0, description="Requests per minute per client address, on every route; 0 = no limit."
    )
    sessions_per_address_per_minute: int = Field(
        60, ge=0, description="New anonymous sessions per minute per client address; 0 = no limit."
    )
    auth_failures_per_address_per_minute: int = Field(
        30, ge=0, description="Requests with bad credentials per minute per address, then 429s; 0 = no limit."
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated proxy addresses / networks whose X-Forwarded-For is believed; "
        "'' = none: the socket peer is the client.",
    )
    batch_max_size: int = Field(8, ge=1, description="Most generation requests in one forward pass (1 = no batching).")
    batch_max_wait_ms: float = Field(5.0, ge=0, description="Longest a request waits for others to share its batch.")
    # The demo shop (`tryon up` turns it on): real products imported in the background on first start.
    demo_shop: bool = Field(
        False, description="On start with an empty products table, import the demo catalog in a background job."
    )
    demo_catalog: Path = Field(
        Path("../shared/data/fashion_products"),
        description="The demo shop's catalog: a folder with images/ and styles.csv (relative: to the working dir).",
    )
    demo_catalog_size: int = Field(300, ge=1, le=100_000, description="Rows of the demo catalog to import.")

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value not in ("auto", "cpu") and not value.startswith("cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {value!r}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        parse_networks(value)  # ValueError names the bad entry.
        return value

    @property
    def trusted_proxy_networks(self) -> list[IPNetwork]:
        return parse_networks(self.trusted_proxies)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "tryon.sqlite3"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def resolved_fashion_checkpoint(self) -> Path | None:
        """The fashion checkpoint folder to serve, or None when there is none."""
        if self.fashion_checkpoint is not None:
            return self.fashion_checkpoint
        return shipped_fashion_checkpoint()

    @property
    def resolved_job_workers(self) -> int:
        """Job worker threads inside the API process (Redis deployments run `tryon worker` instead)."""
        if self.job_workers is not None:
            return self.job_workers
        return 0 if self.redis_url else 2

    def torch_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def shipped_fashion_checkpoint() -> Path | None:
    """tryon/assets/fashion, the shipped fashion model, when it is there."""
    shipped = Path(__file__).resolve().parent / "assets" / "fashion"
    return shipped if (shipped / "config.json").is_file() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
