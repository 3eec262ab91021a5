"""`tryon products import`: a folder of real catalog photos + a styles.csv-like file into the service's
database (TRYON_DATA_DIR), through the service code; a report of kept and refused rows; a second run
updates; what it imports is what the API lists. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import api_key, postgres_database, service_settings, shopper

from tryon.api import create_app

FIXTURES = Path(__file__).parent / "data" / "fashion"
HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage"

# Runs the CLI in a fresh process; the verb is registered by hand when this checkout's entry points
# are not installed yet (`pip install -e .` adds it to `tryon`).
RUNNER = """
import sys
from tryon import cli
from tryon.commands import products

build = cli.build_parser

def build_parser():
    parser = build()
    verbs = next(a for a in parser._actions if a.dest == "command")
    if "products" not in verbs.choices:
        products.register(verbs)
    return parser

cli.build_parser = build_parser
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'tryon.sqlite3'}"
    else:
        with postgres_database() as url:
            yield url


def run(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TRYON_DATA_DIR": str(tmp_path / "data"), "TRYON_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1])


def labels_file(tmp_path: Path, *extra: str) -> Path:
    rows = (FIXTURES / "styles.csv").read_text().splitlines()[1:]
    path = tmp_path / "styles.csv"
    path.write_text("\n".join([HEADER, *rows, *extra]) + "\n")
    return path


def test_import_keeps_good_rows_refuses_bad_ones_and_the_api_lists_them(tmp_path: Path, database_url: str) -> None:
    labels = labels_file(
        tmp_path,
        "99999,Men,Apparel,Topwear,Tshirts,Blue,Fall,2011,Casual",           # No photo.
        "10647,Martians,Apparel,Topwear,Tshirts,Blue,Fall,2011,Casual",      # A photo, a bad gender.
    )
    report = tmp_path / "report.json"
    r = run(tmp_path, database_url, "products", "import", "--images", str(FIXTURES / "images"), "--labels",
            str(labels), "--report", str(report), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "7 rows: 5 kept (5 new, 0 updated), 2 refused" in r.stdout
    data = json.loads(report.read_text())
    assert data["kept_by_view"] == {"flat": 2, "on_model": 3}          # 10025 and the hoodie 10643 are flats.
    refused = {row["id"]: row["reason"] for row in data["refusals"]}
    assert refused == {"99999": "missing_file", "10647": "unknown_value"}

    again = run(tmp_path, database_url, "products", "import", "--images", str(FIXTURES / "images"), "--labels",
                str(labels), "--limit", "2", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "2 rows: 2 kept (0 new, 2 updated), 0 refused" in again.stdout

    settings = service_settings(tmp_path, database_url=database_url)
    with TestClient(create_app(settings)) as client:
        listed = client.get("/v1/products", headers=shopper(client), params={"per_page": 100}).json()
        assert sorted(p["product_id"] for p in listed["items"]) == ["10025", "10057", "10075", "10643", "11280"]
        jeans = next(p for p in listed["items"] if p["product_id"] == "11280")
        assert (jeans["category"], jeans["colour"], jeans["view"]) == ("bottoms", "black", "on_model")
        assert client.get(jeans["photo"]["url"], headers=shopper(client)).status_code == 200
        shop = api_key(client, "shop")
    # A shop's key makes its owner the importer (as with POST /v1/products).
    r = run(tmp_path, database_url, "products", "import", "--images", str(FIXTURES / "images"), "--labels",
            str(labels), "--limit", "1", "--key", shop["X-API-Key"], "--no-progress")
    assert r.returncode == 0 and "1 kept (1 new" in r.stdout


def test_bad_arguments_are_one_readable_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'tryon.sqlite3'}"
    images = str(FIXTURES / "images")
    cases = [
        (["--images", str(tmp_path / "nope"), "--labels", str(labels_file(tmp_path))], "not a folder"),
        (["--images", images, "--labels", str(tmp_path / "none.csv")], "no such file"),
        (["--images", images, "--labels", str(labels_file(tmp_path)), "--limit", "0"], "--limit must be at least 1"),
        (["--images", images, "--labels", str(labels_file(tmp_path)), "--key", "tyk_wrong"], "invalid"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,gender\n1,Men\n")
    cases.append((["--images", images, "--labels", str(bad)], "no 'id' column"))
    for args, words in cases:
        r = run(tmp_path, url, "products", "import", *args)
        assert r.returncode != 0, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], r.stderr
