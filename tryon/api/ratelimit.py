"""Rate limits: token buckets per key (a caller, a client address), in memory or shared through Redis.

Raises RateLimitedError, which the API answers with 429 and a Retry-After header. The limits of the
service (`Limits`): requests per caller, requests per client address (every route, the
unauthenticated ones too), new sessions per address, and failed authentications per address. Who
the client is comes from `client_address`: the socket peer, or the X-Forwarded-For entry a trusted
proxy (`TRYON_TRUSTED_PROXIES`) added.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from tryon.config import IPNetwork, Settings
from tryon.errors import TooManyRequestsError

log = logging.getLogger(__name__)


class RateLimitedError(TooManyRequestsError):
    """Too many requests from one caller; `retry_after` is in seconds."""


class Bucket(Protocol):
    """`per_minute` tokens a minute per key, bursts up to that many."""

    per_minute: int

    def take(self, key: str, *, consume: bool = True) -> float:
        """Take a token for `key` (with consume=False only look). Returns 0 when there was one, else
        the seconds until there is one (nothing taken)."""
        ...


class MemoryBucket:
    """Token buckets in this process's memory (one replica's view)."""

    def __init__(self, per_minute: int, max_keys: int = 100_000) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def take(self, key: str, *, consume: bool = True) -> float:
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / rate
            if not consume:
                return 0.0
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._buckets.clear()   # Crude bound on memory; a cleared bucket starts full.
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0


# KEYS[1] the bucket; ARGV: capacity, tokens per millisecond, consume (1/0). Redis's clock, so that
# every replica agrees. Returns 0 (a token was there) or the milliseconds until one is.
_TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens < 1 then
  wait = math.ceil((1 - tokens) / rate)
elseif ARGV[3] == '1' then
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 1000)
return wait
"""


class RedisBucket:
    """Token buckets in Redis, shared by every replica that uses the same Redis and `name`. When
    Redis cannot be reached the replica falls back to its own memory buckets (and says so in the
    log) rather than refusing everything or letting everything through, and tries Redis again
    `retry_s` later (not on every request: each try could wait for a connect timeout)."""

    def __init__(self, client: Any, name: str, per_minute: int, retry_s: float = 5.0) -> None:
        self.per_minute = per_minute
        self.prefix = f"tryon:ratelimit:{name}:"
        self.retry_s = retry_s
        self._script = client.register_script(_TAKE_SCRIPT)
        self._fallback = MemoryBucket(per_minute)
        self._down_until = 0.0
        self._warned_at = -math.inf

    def take(self, key: str, *, consume: bool = True) -> float:
        now = time.monotonic()
        if now < self._down_until:
            return self._fallback.take(key, consume=consume)
        try:
            rate_per_ms = self.per_minute / 60_000.0
            wait_ms = self._script(keys=[self.prefix + key], args=[self.per_minute, rate_per_ms, int(consume)])
        except Exception as exc:
            self._down_until = now + self.retry_s
            if now - self._warned_at > 60:
                self._warned_at = now
                log.warning("rate limits: Redis unavailable (%s); this replica limits on its own", exc)
            return self._fallback.take(key, consume=consume)
        return int(wait_ms) / 1000.0


@dataclasses.dataclass
class RateLimiter:
    """One limit: `per_minute` of `what` per key (0 = no limit), refused with a readable message."""

    per_minute: int
    what: str = "requests"              # "requests from this address", ...
    bucket: Bucket | None = None        # Default: in memory.

    def __post_init__(self) -> None:
        if self.bucket is None:
            self.bucket = MemoryBucket(self.per_minute)

    def check(self, key: str) -> None:
        """Take one token for `key`; RateLimitedError (429 with Retry-After) when there is none."""
        self._refuse_if_waiting(key, consume=True)

    def check_not_exhausted(self, key: str) -> None:
        """RateLimitedError when `key` has no token left, taking nothing (failed logins: counted only
        when they fail, but once the budget is spent the address is refused before it tries)."""
        self._refuse_if_waiting(key, consume=False)

    def _refuse_if_waiting(self, key: str, *, consume: bool) -> None:
        if self.per_minute <= 0:
            return
        assert self.bucket is not None
        wait = self.bucket.take(key, consume=consume)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise RateLimitedError(
                f"too many {self.what}: at most {self.per_minute} a minute; try again in {retry_after} s",
                retry_after=retry_after,
            )


@dataclasses.dataclass
class Limits:
    """The service's limits (see `build_limits`)."""

    per_caller: RateLimiter             # Requests of one session or API key (owner).
    per_address: RateLimiter            # Requests from one client address, every route.
    sessions_per_address: RateLimiter   # New anonymous sessions from one address.
    auth_failures_per_address: RateLimiter  # Requests with bad credentials from one address.
    trusted_proxies: Sequence[IPNetwork] = ()


def build_limits(settings: Settings, redis_client: Any | None = None) -> Limits:
    """The limits of `settings`; shared through `redis_client` (a redis.Redis) when given."""

    def limiter(name: str, per_minute: int, what: str) -> RateLimiter:
        bucket = RedisBucket(redis_client, name, per_minute) if redis_client is not None else None
        return RateLimiter(per_minute, what, bucket)

    return Limits(
        per_caller=limiter("caller", settings.rate_limit_per_minute, "requests"),
        per_address=limiter("address", settings.rate_limit_per_address_per_minute, "requests from this address"),
        sessions_per_address=limiter(
            "sessions", settings.sessions_per_address_per_minute, "new sessions from this address"
        ),
        auth_failures_per_address=limiter(
            "auth_failures",
            settings.auth_failures_per_address_per_minute,
            "failed authentications from this address",
        ),
        trusted_proxies=settings.trusted_proxy_networks,
    )


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str:
    """The client's address for rate limits: the socket `peer`, unless the peer is a trusted proxy;
    then the X-Forwarded-For entries are read from the right (the nearest hop first) and the first
    one that is not a trusted proxy is the client. Entries left of it are the client's own words
    and are ignored. IPv6 clients are keyed by their /64 (one host has a whole /64 to rotate in)."""
    address = peer or "unknown"
    if trusted and forwarded_for and _is_trusted(address, trusted):
        for entry in reversed([e.strip() for e in forwarded_for.split(",") if e.strip()]):
            address = entry
            if not _is_trusted(entry, trusted):
                break
    return _rate_key(address)


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _rate_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]            # "testclient", "unknown", or garbage a proxy passed on.
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
