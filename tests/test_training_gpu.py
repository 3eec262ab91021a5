"""The trainer's GPU paths: fp16 blocks / bf16 autocast, channels_last, fused kernels, the fixed-time script.

Run on a CUDA machine with `pytest -m gpu tests/test_training_gpu.py` (skipped elsewhere).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_zip import write_test_zip

from training import dist
from training.loop import RealImages, Trainer, open_dataset
from training.train import add_arguments, resolve_options

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

SMALL = [
    "--cfg", "tiny64", "--batch", "16", "--channel-base", "1024", "--channel-max", "64", "--z-dim", "64",
    "--w-dim", "64", "--workers", "0", "--no-progress", "--aug", "ada", "--p", "0.3",
    "--g-reg-interval", "2", "--d-reg-interval", "2", "--device", "cuda",
]


@pytest.fixture(scope="module")
def data_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_zip(tmp_path_factory.mktemp("data") / "gpu64.zip", num_images=32, resolution=64)


@pytest.mark.parametrize(("amp", "channels_last"), [("fp16", True), ("fp16", False), ("bf16", False), ("off", False)])
def test_mixed_precision_steps_are_finite(data_zip: Path, amp: str, channels_last: bool) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", str(data_zip), "--outdir", "unused", *SMALL, "--amp", amp,
                              "--channels-last" if channels_last else "--no-channels-last"])
    opts = resolve_options(args, world_size=1, device="cuda")
    info = dist.DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cuda"), backend=None)
    data = RealImages(open_dataset(data_zip), batch=opts.batch, rank=0, world_size=1, seed=0,
                      device=info.device, workers=0, c_dim=opts.c_dim)
    trainer = Trainer(opts, info, data)
    for _ in range(4):
        trainer.step()
    stats = trainer.stats.reduce(["Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty"])
    assert len(stats) == 4 and all(np.isfinite(v) for v in stats.values()), stats
    assert all(torch.isfinite(p).all() for p in trainer.G.parameters())


def test_gpu_run_fits_its_budget_and_exports(data_zip: Path, tmp_path: Path) -> None:
    from training import gpu_run

    export = tmp_path / "export"
    argv = ["--data", str(data_zip), "--outdir", str(tmp_path / "runs"), "--export", str(export),
            "--minutes", "0.75", "--kimg", "1000", *SMALL]
    assert gpu_run.main(argv) == 0
    summary = json.loads((export / "summary.json").read_text())
    assert summary["stopped_by"] == "time" and summary["steps"] > 0
    assert len(list(export.iterdir())) <= gpu_run.MAX_FILES
