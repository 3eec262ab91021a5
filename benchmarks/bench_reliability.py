"""Reliability figures of a real `tryon serve` (SQLite, loopback), as a demanding operator would try it:

- race: rounds of 8 new sessions POSTing /v1/outfits with the same new seed at once (the same image,
  so the same content hash): how many answers are 5xx, and how many 5xx lack a request id;
- load: 32 clients POSTing /v1/outfits where every 32 consecutive requests share a seed: throughput,
  p50 / p95 latency and the 5xx count;
- blank_jpeg: a blank 7000x5700 JPEG uploaded to POST /v1/faces (no face: a 422): server time;
- bad_keys: requests with bogus API keys from one client: how many are refused with 401 and how
  many with 429 (failed authentication limited), and whether an X-Forwarded-For header changes that;
- sessions: new sessions minted by one client: how many are made before 429s (the per-address
  limit), with and without a spoofed X-Forwarded-For.
The limited server runs with the service's default limits (the other one with none, for the load).

Run it against other code (e.g. an older commit, unpacked with `git archive`) with `--code DIR`: the
server runs with PYTHONPATH=DIR, so before/after compare in one run on one machine.

    python benchmarks/bench_reliability.py                       # this checkout
    python benchmarks/bench_reliability.py --code /tmp/old --label before
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import RESULTS, Server, make_random_checkpoint


def blank_jpeg(width: int = 7000, height: int = 5700) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (240, 240, 240)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def race(url: str, rounds: int, width: int) -> dict[str, Any]:
    import httpx

    statuses: dict[int, int] = {}
    no_id = 0
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        tokens = [(await http.post("/v1/sessions")).json()["token"] for _ in range(width)]
        for r in range(rounds):
            body = {"category": "Shirts", "colour": "Blue", "view": "on_model", "seed": 900_000 + r}

            async def one(token: str, body: dict[str, Any] = body) -> tuple[int, Any]:
                try:
                    resp = await http.post("/v1/outfits", headers={"Authorization": f"Bearer {token}"}, json=body)
                except httpx.HTTPError:
                    return 0, None      # A dropped connection.
                rid = resp.json().get("request_id") if resp.status_code >= 500 else "n/a"
                return resp.status_code, rid

            for code, rid in await asyncio.gather(*(one(t) for t in tokens)):
                statuses[code] = statuses.get(code, 0) + 1
                no_id += int(code >= 500 and not rid)
    total = sum(statuses.values())
    return {"requests": total, "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "errors_5xx_or_dropped": sum(v for k, v in statuses.items() if k >= 500 or k == 0),
            "5xx_without_request_id": no_id}


async def load(url: str, clients: int, requests: int, seconds: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=clients + 4)) as http:
        tokens = [(await http.post("/v1/sessions")).json()["token"] for _ in range(clients)]
        for seed in range(2):  # Warm-up: model loaded, code paths hot.
            await http.post("/v1/outfits", headers={"Authorization": f"Bearer {tokens[0]}"}, json={"seed": seed})
        issued = 0
        deadline = time.monotonic() + seconds

        async def loop(token: str) -> None:
            nonlocal issued
            while issued < requests and time.monotonic() < deadline:
                i = issued
                issued += 1
                body = {"category": ["Tshirts", "Shirts", "Jeans"][i % 3], "seed": 800_000 + i // clients}
                t0 = time.perf_counter()
                try:
                    r = await http.post("/v1/outfits", headers={"Authorization": f"Bearer {token}"}, json=body)
                    code = r.status_code
                except httpx.HTTPError:
                    code = 0
                statuses[code] = statuses.get(code, 0) + 1
                if code == 201:
                    latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(loop(t) for t in tokens))
        wall = time.perf_counter() - started
    return {"clients": clients, "requests": sum(statuses.values()),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "errors_5xx_or_dropped": sum(v for k, v in statuses.items() if k >= 500 or k == 0),
            "seconds": round(wall, 2), "throughput_rps": round(len(latencies) / wall, 2) if wall else 0.0,
            "p50_ms": _pct(latencies, 0.5), "p95_ms": _pct(latencies, 0.95)}


def blank_upload(url: str, tries: int) -> dict[str, Any]:
    import httpx

    data = blank_jpeg()
    times: list[float] = []
    codes: list[int] = []
    with httpx.Client(base_url=url, timeout=300) as http:
        auth = {"Authorization": f"Bearer {http.post('/v1/sessions').json()['token']}"}
        for _ in range(tries):
            t0 = time.perf_counter()
            r = http.post("/v1/faces", headers=auth, files={"file": ("blank.jpg", data, "image/jpeg")})
            times.append(time.perf_counter() - t0)
            codes.append(r.status_code)
    return {"bytes": len(data), "size": "7000x5700", "statuses": codes,
            "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3)}


def bad_keys(url: str, count: int) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        for name, extra in (("plain", {}), ("forwarded_for_spoofed", None)):
            statuses: dict[int, int] = {}
            for i in range(count):
                headers = {"X-API-Key": f"tyk_bogus{i}"}
                if extra is None:
                    headers["X-Forwarded-For"] = f"203.0.113.{i % 250}"
                code = http.get("/v1/outfits", headers=headers).status_code
                statuses[code] = statuses.get(code, 0) + 1
            out[name] = {str(k): v for k, v in sorted(statuses.items())}
            time.sleep(0.1)
    return out


def session_minting(url: str, count: int) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        for name, spoof in (("plain", False), ("forwarded_for_spoofed", True)):
            statuses: dict[int, int] = {}
            for i in range(count):
                headers = {"X-Forwarded-For": f"198.51.100.{i % 250}"} if spoof else {}
                code = http.post("/v1/sessions", headers=headers).status_code
                statuses[code] = statuses.get(code, 0) + 1
            out[name] = {str(k): v for k, v in sorted(statuses.items())}
    return out


def default_limits_env() -> dict[str, str]:
    """The service's default limits, as TRYON_* variables (the bench server turns some off)."""
    from tryon.config import Settings

    names = ("rate_limit_per_minute", "rate_limit_per_address_per_minute", "sessions_per_address_per_minute",
             "auth_failures_per_address_per_minute")
    return {f"TRYON_{n.upper()}": str(Settings.model_fields[n].default) for n in names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=None, help="run the server on the code in DIR (PYTHONPATH)")
    parser.add_argument("--label", default="this checkout", help="what --code is, for the results")
    parser.add_argument("--rounds", type=int, default=12, help="race rounds of 8 requests (default 12)")
    parser.add_argument("--requests", type=int, default=320, help="load requests at 32 clients (default 320)")
    parser.add_argument("--seconds", type=float, default=40.0, help="time limit of the load (default 40)")
    parser.add_argument("--blank-tries", type=int, default=3)
    parser.add_argument("--bad-keys", type=int, default=120)
    parser.add_argument("--sessions", type=int, default=150, help="sessions minted per variant (default 150)")
    args = parser.parse_args()

    doc: dict[str, Any] = {
        "label": args.label,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "model": "random conditional G, 64 px (bench_api.make_random_checkpoint)",
    }
    extra = {"PYTHONPATH": str(args.code.resolve())} if args.code else {}
    with tempfile.TemporaryDirectory(prefix="bench_reliability-") as tmp:
        checkpoint = make_random_checkpoint(Path(tmp) / "fashion")
        server = Server(checkpoint, 8, Path(tmp) / "data", extra_env=extra, cwd=args.code)
        try:
            server.wait_ready()
            doc["race"] = asyncio.run(race(server.url, args.rounds, 8))
            print("race      ", doc["race"], flush=True)
            doc["load"] = asyncio.run(load(server.url, 32, args.requests, args.seconds))
            print("load      ", doc["load"], flush=True)
            doc["blank_jpeg"] = blank_upload(server.url, args.blank_tries)
            print("blank_jpeg", doc["blank_jpeg"], flush=True)
        finally:
            server.stop()
        limits = default_limits_env()
        doc["limits"] = limits
        for name, runs in (("bad_keys", lambda u: bad_keys(u, args.bad_keys)),
                           ("sessions", lambda u: session_minting(u, args.sessions))):
            limited = Server(checkpoint, 8, Path(tmp) / f"data-{name}", extra_env={**extra, **limits}, cwd=args.code)
            try:
                limited.wait_ready()
                doc[name] = runs(limited.url)
                print(f"{name:<10}", doc[name], flush=True)
            finally:
                limited.stop()

    race_row, load_row, blank = doc["race"], doc["load"], doc["blank_jpeg"]
    print(f"\n{args.label}")
    print(f"{'figure':<44} {'value':>12}")
    print("-" * 57)
    print(f"{'race: requests / 5xx or dropped':<44} {race_row['requests']:>5} / {race_row['errors_5xx_or_dropped']:<5}")
    print(f"{'race: 5xx without request id':<44} {race_row['5xx_without_request_id']:>12}")
    print(f"{'load 32 clients: requests / 5xx or dropped':<44} "
          f"{load_row['requests']:>5} / {load_row['errors_5xx_or_dropped']:<5}")
    print(f"{'load 32 clients: throughput req/s':<44} {load_row['throughput_rps']:>12}")
    print(f"{'load 32 clients: p50 / p95 ms':<44} {load_row['p50_ms']} / {load_row['p95_ms']}")
    print(f"{'blank 7000x5700 JPEG: status / median s':<44} {blank['statuses'][0]} / {blank['median_s']}")
    for what in ("bad_keys", "sessions"):
        for name, statuses in doc[what].items():
            print(f"{what.replace('_', ' ') + ' (' + name + ')':<44} {statuses}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "_" for c in args.label).strip("_")
    out = RESULTS / f"bench_reliability_{slug}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
