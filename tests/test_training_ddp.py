"""2-process gloo DDP on CPU (torchrun) trains to the same weights as 1 process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from training_zip import write_test_zip

from tryon.cli import main as tryon_main
from tryon.nn import Discriminator

REPO_ROOT = Path(__file__).resolve().parents[1]

# Batch 8 = 2 processes x 4, or 1 process x 2 rounds of 4 (the same minibatch-stddev groups). Three
# steps cover path-length (every 2) and R1 (every 3, at step 0) regularisation; ADA moves p every step.
COMMON = [
    "--cfg", "tiny64", "--batch", "8", "--kimg", "0.024", "--channel-base", "256", "--channel-max", "16",
    "--z-dim", "16", "--w-dim", "16", "--map", "1", "--workers", "0", "--no-progress", "--grid-rows", "1",
    "--grid-cols", "2", "--aug", "ada", "--p", "0.3", "--ada-interval", "1", "--ada-kimg", "1",
    "--g-reg-interval", "2", "--d-reg-interval", "3", "--device", "cpu", "--ops", "ref",
]


def _final_snapshot(outdir: Path) -> Path:
    (run_dir,) = outdir.iterdir()
    return sorted(p for p in run_dir.iterdir() if p.name.startswith("network-snapshot-"))[-1]


def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    data = write_test_zip(tmp_path / "tiny64.zip", num_images=12, resolution=64)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training.train", "--data", str(data), "--outdir", str(tmp_path / "two"), *COMMON],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert two.returncode == 0, f"stdout:\n{two.stdout[-2000:]}\nstderr:\n{two.stderr[-6000:]}"
    assert '"world_size": 2' in two.stdout

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = tryon_main(["train", "--data", str(data), "--outdir", str(tmp_path / "one"), "--batch-gpu", "4", *COMMON])
    finally:
        torch.set_num_threads(before)
    assert rc == 0

    a, b = _final_snapshot(tmp_path / "one"), _final_snapshot(tmp_path / "two")
    compared = 0
    for file in ("G.safetensors", "D.safetensors", "G_ema.safetensors"):
        ta: dict[str, Any] = safetensors.torch.load_file(a / file)
        tb: dict[str, Any] = safetensors.torch.load_file(b / file)
        for key, x in ta.items():
            if key.endswith("w_avg"):  # A running average each process keeps over its own samples.
                continue
            y = tb[key]
            scale = max(x.abs().max().item(), 1e-3)
            assert (x - y).abs().max().item() <= 1e-4 * scale, f"{file}: {key}"
            compared += 1
    assert compared > 50
    # And training did move the weights (the comparison is not vacuous).
    kwargs = json.loads((a / "config.json").read_text())["networks"]["D"]["kwargs"]
    torch.manual_seed(0)
    D0 = Discriminator(**kwargs).state_dict()
    trained = safetensors.torch.load_file(a / "D.safetensors")
    assert max((trained[k] - v).abs().max().item() for k, v in D0.items()) > 1e-3
