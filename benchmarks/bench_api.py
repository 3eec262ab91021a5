"""Load test of the API on loopback: p50/p95 latency and throughput at 1, 8 and 32 concurrent
clients, with dynamic batching on and off.

A real `tryon serve` runs in a subprocess on 127.0.0.1 (a fresh data dir, SQLite, in-process job
workers); clients are asyncio + httpx. Every cell is bounded in requests (--requests) and in time
(--seconds): the load stops by itself. Scenarios:

- outfit: POST /v1/outfits (one generation, answered when the image is stored)
- outfit_job: POST /v1/outfits with `Prefer: respond-async`, then GET /v1/jobs/{id}?wait=10 until done
- image: GET /v1/images/{id} of an existing outfit (storage path only; batching does not apply)
- catalog: GET /v1/catalog, a page of 24 filtered by category (after the first-use fill)
- tryon: POST /v1/tryon of a projected face (a real photo, projected once in the set-up with the
  shipped face models) onto an on-model outfit, then GET /v1/jobs/{id}?wait=10 until done: one
  render of the face plus compositing per request (batching does not apply)

The fashion model is --checkpoint (e.g. the
shipped tryon/assets/fashion) or, by default, a random serving-sized 64 px conditional generator:
the timings are about the service, not image quality.

    python benchmarks/bench_api.py                                  # all scenarios, 1/8/32 clients
    python benchmarks/bench_api.py --scenarios outfit --clients 1 8 --requests 64 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

SCHEMA = {
    "columns": [
        {"name": "articleType", "values": ["Tshirts", "Shirts", "Jeans", "Dresses"]},
        {"name": "baseColour", "values": ["Black", "White", "Blue", "Red"]},
        {"name": "gender", "values": ["Men", "Women"]},
        {"name": "view", "values": ["flat", "on_model"]},
    ]
}


def make_random_checkpoint(directory: Path) -> Path:
    """A random conditional Generator at 64 px, sized like bench_generator's 64 px serving config."""
    import torch

    from tryon.checkpoint import save_checkpoint
    from tryon.nn import Generator

    kwargs = {
        "z_dim": 256,
        "c_dim": 12,
        "w_dim": 256,
        "img_resolution": 64,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2},
        "synthesis_kwargs": {"channel_base": 8192, "channel_max": 256},
    }
    torch.manual_seed(0)
    G = Generator(**kwargs).eval()  # type: ignore[arg-type]
    return save_checkpoint(directory, {"G_ema": G}, {"networks": {"G_ema": {"kwargs": kwargs}}, "label_schema": SCHEMA})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`tryon serve` in a subprocess, stopped with SIGINT."""

    def __init__(
        self,
        checkpoint: Path,
        batch_max_size: int,
        data_dir: Path,
        extra_env: dict[str, str] | None = None,
        cwd: Path | None = None,            # Where `python -m tryon.cli` runs (its code comes first).
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRYON_")}
        env.update(
            TRYON_DATA_DIR=str(data_dir),
            TRYON_FASHION_CHECKPOINT=str(checkpoint),
            TRYON_BATCH_MAX_SIZE=str(batch_max_size),
            TRYON_RATE_LIMIT_PER_MINUTE="0",
            TRYON_RATE_LIMIT_PER_ADDRESS_PER_MINUTE="0",  # Every client is on loopback.
            TRYON_SESSIONS_PER_ADDRESS_PER_MINUTE="0",
            TRYON_LOG_LEVEL=os.environ.get("TRYON_LOG_LEVEL", "WARNING"),
            TRYON_DEVICE="cpu",
        )
        env.update(extra_env or {})
        self.log = open(data_dir.parent / f"server-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tryon.cli", "serve", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=self.log,
            cwd=cwd,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode} (see {self.log.name})")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


FACE_PHOTO = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces" / "photos" / "obama_small.jpg"
NO_BATCHING = ("image", "catalog", "tryon")  # Scenarios that do not go through the generation batcher.


async def _wait_job(http: Any, auth: dict[str, str], job_id: str) -> bool:
    """Long-poll a job until it finishes; True when it succeeded."""
    while True:
        job = (await http.get(f"/v1/jobs/{job_id}", headers=auth, params={"wait": 10})).json()
        if job["status"] in ("succeeded", "failed"):
            return bool(job["status"] == "succeeded")


async def _tryon_setup(http: Any, auth: dict[str, str]) -> dict[str, str]:
    """A projected face and an on-model outfit of this caller."""
    with FACE_PHOTO.open("rb") as f:
        face = (await http.post("/v1/faces", headers=auth, files={"file": (FACE_PHOTO.name, f, "image/jpeg")})).json()
    job = face.get("projection_job")
    if not job or not await _wait_job(http, auth, job["id"]):
        raise RuntimeError(f"the face was not projected: {face}")
    outfit = (await http.post("/v1/outfits", headers=auth, json={"view": "on_model", "seed": 3})).json()
    return {"face_id": face["id"], "outfit_id": outfit["id"]}


async def run_cell(url: str, scenario: str, clients: int, requests: int, seconds: float) -> dict[str, Any]:
    """`clients` concurrent loops sharing a budget of `requests` requests and `seconds` seconds."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        token = (await http.post("/v1/sessions")).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        # Three categories and a colour of the model served (the random one's or a real checkpoint's).
        columns = {col["field"]: col["values"] for col in (await http.get("/v1/labels")).json()["columns"]}
        categories, colour = columns["category"][:3], columns["colour"][0]
        image_url = None
        tryon_body: dict[str, str] = {}
        if scenario == "image":
            outfit = (await http.post("/v1/outfits", headers=auth, json={"category": categories[0], "seed": 1})).json()
            image_url = outfit["image"]["url"]
        elif scenario == "catalog":
            r = await http.get("/v1/catalog", headers=auth)  # The first use fills the catalog.
            if r.status_code != 200:
                raise RuntimeError(f"GET /v1/catalog: {r.status_code} {r.text}")
        elif scenario == "tryon":
            tryon_body = await _tryon_setup(http, auth)
        for seed in range(2):  # Warm-up: the model is loaded and the code paths are hot.
            await http.post("/v1/outfits", headers=auth, json={"category": categories[0], "seed": seed})
        metrics_before = _batch_metrics((await http.get("/metrics")).text)

        latencies: list[float] = []
        errors = 0
        issued = 0
        deadline = time.monotonic() + seconds

        async def one(i: int) -> None:
            nonlocal errors
            body = {"category": categories[i % 3], "colour": colour, "seed": 1000 + i}
            t0 = time.perf_counter()
            if scenario == "outfit":
                r = await http.post("/v1/outfits", headers=auth, json=body)
                ok = r.status_code == 201
            elif scenario == "outfit_job":
                r = await http.post("/v1/outfits", headers={**auth, "Prefer": "respond-async"}, json=body)
                ok = r.status_code == 202 and await _wait_job(http, auth, r.json()["id"])
            elif scenario == "catalog":
                category = categories[i % 3]
                r = await http.get("/v1/catalog", headers=auth, params={"category": category, "per_page": 24})
                ok = r.status_code == 200
            elif scenario == "tryon":
                r = await http.post("/v1/tryon", headers=auth, json=tryon_body)
                ok = r.status_code == 202 and await _wait_job(http, auth, r.json()["job"]["id"])
            else:
                assert image_url is not None
                r = await http.get(image_url, headers=auth)
                ok = r.status_code == 200
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

        async def loop() -> None:
            nonlocal issued
            while issued < requests and time.monotonic() < deadline:
                i = issued
                issued += 1
                await one(i)

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        wall = time.perf_counter() - started
        metrics_after = _batch_metrics((await http.get("/metrics")).text)

    batches = metrics_after[1] - metrics_before[1]
    items = metrics_after[0] - metrics_before[0]
    lat = sorted(latencies)
    return {
        "scenario": scenario,
        "clients": clients,
        "requests": len(lat),
        "errors": errors,
        "seconds": round(wall, 3),
        "throughput_rps": round(len(lat) / wall, 2) if wall > 0 else 0.0,
        "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
        "p95_ms": round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None,
        "mean_batch": round(items / batches, 2) if batches else None,
    }


def _batch_metrics(text: str) -> tuple[float, float]:
    """(items, forward passes) so far, from tryon_batch_size_sum / _count."""
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("tryon_batch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("tryon_batch_size_count"):
            count = float(line.split()[-1])
    return total, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="fashion checkpoint (default: random 64 px)")
    parser.add_argument("--scenarios", nargs="+", default=["outfit", "outfit_job", "image", "catalog", "tryon"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=64, help="requests per cell (default 64)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit per cell (default 30)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 1], help="8 = batching on, 1 = off")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["auto", "fp32", "bf16"],
                        help="the servers' TRYON_PRECISION (each batch size runs with each)")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_api-") as tmp:
        checkpoint = args.checkpoint or make_random_checkpoint(Path(tmp) / "fashion")
        for batch, precision in itertools.product(args.batch_sizes, args.precisions):
            server = Server(checkpoint, batch, Path(tmp) / f"data-b{batch}-{precision}",
                            extra_env={"TRYON_PRECISION": precision})
            try:
                server.wait_ready()
                for scenario in args.scenarios:
                    if scenario in NO_BATCHING and (batch, precision) != (args.batch_sizes[0], args.precisions[0]):
                        continue  # Batching does not touch this path.
                    for clients in args.clients:
                        row = asyncio.run(run_cell(server.url, scenario, clients, args.requests, args.seconds))
                        row["batching"] = "on" if batch > 1 else "off"
                        row["batch_max_size"] = batch
                        row["precision"] = precision
                        rows.append(row)
                        print(
                            f"{scenario:<11} batching {row['batching']:<3} {precision:<4} clients {clients:>2}: "
                            f"{row['requests']:>3} ok {row['errors']} err  {row['throughput_rps']:>7.2f} req/s  "
                            f"p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms  mean batch {row['mean_batch']}",
                            flush=True,
                        )
            finally:
                server.stop()

    print()
    header = (f"{'scenario':<11} {'batching':<8} {'prec':<4} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'batch':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['scenario']:<11} {r['batching']:<8} {r['precision']:<4} {r['clients']:>7} {r['throughput_rps']:>8.2f} "
            f"{r['p50_ms'] or 0:>8.1f} {r['p95_ms'] or 0:>8.1f} {r['mean_batch'] or 0:>6.2f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_api.json"
    doc = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "model": str(args.checkpoint) if args.checkpoint else "random conditional G, 64 px (make_random_checkpoint)",
        "requests_per_cell": args.requests,
        "seconds_per_cell": args.seconds,
        "rows": rows,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
