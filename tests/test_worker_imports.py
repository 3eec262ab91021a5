"""`tryon worker` runs the service's jobs without the web app: building its runtime imports no router,
nor FastAPI at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# What `tryon worker` does before it starts consuming (tryon.commands.serve.run_worker), then what it
# imported. A fresh interpreter: the test process itself has imported the routers long ago.
WORKER_IMPORTS = """
import json, sys
from tryon.cli import main  # noqa: F401  (the console script's module, as `tryon worker` starts)
from tryon.commands import serve  # noqa: F401
from tryon.api.runtime import build_runtime
from tryon.config import get_settings

runtime = build_runtime(get_settings())
print(json.dumps({
    "routers": sorted(m for m in sys.modules if m.startswith("tryon.api.routers")),
    "app": "tryon.api.app" in sys.modules,
    "fastapi": "fastapi" in sys.modules,
    "kinds": runtime.registry.kinds(),
    "shared_services": runtime.queue.env.services is getattr(runtime, "services", None),
}))
runtime.close()
"""


def test_the_worker_imports_no_router_and_knows_every_job(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRYON_")} | {"TRYON_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", WORKER_IMPORTS], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["routers"] == [] and not seen["app"] and not seen["fastapi"], seen
    assert {"outfit.generate", "garment.transfer", "face.project", "face.refine", "face.compose", "tryon.render",
            "products.import_demo"} <= set(seen["kinds"]), seen["kinds"]
    assert seen["shared_services"]
