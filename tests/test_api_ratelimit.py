"""Rate limits with no way around them: per client address as well as per caller (new sessions do not
escape it), failed authentication per address, the unauthenticated routes too, X-Forwarded-For only
from named proxies, and limits shared by replicas through Redis."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_helpers import api_key, redis_url_or_skip, service_settings

from tryon.api import create_app
from tryon.api.ratelimit import MemoryBucket, RateLimitedError, RateLimiter, RedisBucket, client_address
from tryon.config import Settings, parse_networks


def random_ip() -> str:
    """A documentation-range address of its own per test (Redis is shared by concurrent runs)."""
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"


@contextlib.contextmanager
def service(tmp_path: Path, *, ip: str | None = None, **limits: Any) -> Iterator[TestClient]:
    settings = service_settings(tmp_path, **limits)
    with TestClient(create_app(settings, in_process_workers=0), client=(ip or random_ip(), 40000)) as client:
        yield client


def new_session(client: TestClient) -> dict[str, str]:
    r = client.post("/v1/sessions")
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_new_sessions_do_not_escape_the_limit_of_their_address(tmp_path: Path) -> None:
    with service(tmp_path, rate_limit_per_minute=5, rate_limit_per_address_per_minute=12) as client:
        codes = []
        for _ in range(4):  # Each session stays under its own 5, but the address has 12 in all.
            headers = new_session(client)
            codes += [client.get("/v1/jobs/x", headers=headers).status_code for _ in range(2)]
        assert codes == [404] * 8
        r = client.post("/v1/sessions")  # The 13th request of the address.
        assert r.status_code == 429 and "from this address" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1


def test_minting_sessions_is_limited_per_address(tmp_path: Path) -> None:
    with service(tmp_path, sessions_per_address_per_minute=3) as client:
        assert [client.post("/v1/sessions").status_code for _ in range(4)] == [201, 201, 201, 429]
        r = client.post("/v1/sessions")
        assert "new sessions from this address" in r.json()["detail"] and r.headers["Retry-After"].isdigit()


@pytest.mark.parametrize("path", ["/v1/labels", "/v1/edits/directions", "/health", "/metrics"])
def test_unauthenticated_routes_are_limited(tmp_path: Path, path: str) -> None:
    with service(tmp_path, rate_limit_per_address_per_minute=3) as client:
        codes = [client.get(path).status_code for _ in range(4)]
        assert 429 not in codes[:3] and codes[3] == 429, codes
        assert client.get(path).headers["Retry-After"].isdigit()


def test_bogus_credentials_get_429_after_a_bound(tmp_path: Path) -> None:
    ip = random_ip()
    with service(tmp_path, ip=ip, auth_failures_per_address_per_minute=5) as client:
        admin = api_key(client)
        bogus = [{"X-API-Key": f"tyk_bogus{i}"} for i in range(7)] + [{"Authorization": "Bearer tys_nope"}]
        codes = [client.get("/v1/jobs/x", headers=h).status_code for h in bogus]
        assert codes == [401] * 5 + [429] * 3
        r = client.get("/v1/jobs/x", headers=bogus[0])
        assert "failed authentications from this address" in r.json()["detail"] and r.headers["Retry-After"]
        # Once spent, the address is refused before credentials are looked up, good ones included...
        assert client.get("/v1/jobs/x", headers=admin).status_code == 429
        assert client.get("/v1/labels").status_code != 429  # ...but calls without credentials still work.
    with service(tmp_path, ip=random_ip(), auth_failures_per_address_per_minute=5) as other:
        assert other.get("/v1/jobs/x", headers=bogus[0]).status_code == 401  # Another address is unaffected.


def test_x_forwarded_for_is_believed_only_from_named_proxies(tmp_path: Path) -> None:
    spoofed = [{"X-Forwarded-For": f"203.0.113.{i}"} for i in range(4)]
    with service(tmp_path, sessions_per_address_per_minute=2) as client:  # Default: no proxy is trusted.
        assert [client.post("/v1/sessions", headers=h).status_code for h in spoofed] == [201, 201, 429, 429]
    proxy = random_ip()
    behind_proxy = {"sessions_per_address_per_minute": 2, "trusted_proxies": f"{proxy}, 10.0.0.0/8"}
    with service(tmp_path, ip=proxy, **behind_proxy) as client:
        # Behind the proxy each forwarded client has its own budget...
        assert [client.post("/v1/sessions", headers=h).status_code for h in spoofed] == [201] * 4
        # ...the client's own X-Forwarded-For entries (left of what trusted hops added) are ignored...
        chain = [{"X-Forwarded-For": f"1.2.3.{i}, 203.0.113.77, 10.1.2.3"} for i in range(3)]
        assert [client.post("/v1/sessions", headers=h).status_code for h in chain] == [201, 201, 429]
        # ...and a request from the proxy itself, forwarding nothing, is the proxy's.
        assert client.post("/v1/sessions").status_code == 201


def test_client_address() -> None:
    trusted = parse_networks("10.0.0.0/8, 192.0.2.1")
    assert client_address("192.0.2.9", "1.1.1.1", trusted) == "192.0.2.9"  # Untrusted peer: its header is ignored.
    assert client_address("192.0.2.1", "1.1.1.1, 8.8.8.8", trusted) == "8.8.8.8"
    assert client_address("192.0.2.1", "8.8.8.8, 10.0.0.2", trusted) == "8.8.8.8"
    assert client_address("192.0.2.1", None, trusted) == "192.0.2.1"
    assert client_address("2001:db8::1", None, []) == client_address("2001:db8::ffff", None, []) == "2001:db8::/64"
    assert client_address("::ffff:198.51.100.1", None, []) == "198.51.100.1"
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP address or network"):
        Settings(_env_file=None, trusted_proxies="10.0.0.0/33")  # type: ignore[call-arg]


def test_limits_are_shared_between_replicas_through_redis(tmp_path: Path) -> None:
    url = redis_url_or_skip()
    ip = random_ip()
    limits = {"redis_url": url, "sessions_per_address_per_minute": 4}
    with service(tmp_path / "a", ip=ip, **limits) as first, service(tmp_path / "b", ip=ip, **limits) as second:
        codes = [c.post("/v1/sessions").status_code for c in (first, second, first, second, first, second)]
        assert codes == [201, 201, 201, 201, 429, 429]  # 4 in all, not 4 per replica.
        r = second.post("/v1/sessions")
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 15


def test_redis_buckets_refill_and_fall_back_when_redis_is_down() -> None:
    import redis

    client = redis.Redis.from_url(redis_url_or_skip())
    key = random_ip()
    bucket = RedisBucket(client, "test", per_minute=2)
    assert [bucket.take(key) for _ in range(2)] == [0.0, 0.0]
    assert 0 < bucket.take(key, consume=False) <= 30.0 and 0 < bucket.take(key) <= 30.0
    assert client.pttl(f"tryon:ratelimit:test:{key}") > 0  # Keys expire: Redis does not fill up.
    down = RedisBucket(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5), "test", per_minute=1)
    limiter = RateLimiter(1, "requests", down)
    limiter.check(key)  # Redis is down: this replica's own bucket still limits...
    with pytest.raises(RateLimitedError):
        limiter.check(key)
    assert down._down_until > 0  # ...and Redis is tried again later, not on every request.


def test_memory_buckets_look_without_taking() -> None:
    bucket = MemoryBucket(per_minute=1)
    assert bucket.take("a", consume=False) == 0.0 and bucket.take("a", consume=False) == 0.0
    assert bucket.take("a") == 0.0 and bucket.take("a", consume=False) > 0
