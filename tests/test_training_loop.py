"""The trainer end to end on a tiny model: CLI outputs, exact resume, lazy regularisation, time limit, errors."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch
from training_zip import write_test_zip

from training import dist
from training.loop import RealImages, Trainer, open_dataset
from training.snapshot import load_snapshot
from training.train import add_arguments, resolve_options
from tryon.checkpoint import load_checkpoint
from tryon.cli import main as tryon_main
from tryon.errors import InputError

# A model small enough for a step to take a fraction of a second on a CPU. ADA starts at p = 0.2 and,
# with a target of -1, raises p by 0.04 at every step where some real got a positive logit.
# Path-length regularisation every 2 steps and R1 every 3 steps, so that 4 steps cover them all.
TINY = [
    "--cfg", "tiny64", "--batch", "4", "--channel-base", "256", "--channel-max", "16", "--z-dim", "16",
    "--w-dim", "16", "--map", "1", "--workers", "0", "--no-progress", "--grid-rows", "2", "--grid-cols", "2",
    "--aug", "ada", "--p", "0.2", "--target", "-1", "--ada-interval", "1", "--ada-kimg", "0.1",
    "--g-reg-interval", "2", "--d-reg-interval", "3", "--ops", "ref",
]
STEP_KIMG = 0.004  # One step of batch 4.


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def four_step_run(data_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("runs")
    rc = tryon_main(["train", "--data", str(data_zip), "--outdir", str(outdir), "--kimg", str(4 * STEP_KIMG), *TINY])
    assert rc == 0
    (run_dir,) = outdir.iterdir()
    return run_dir


def _snapshots(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.name.startswith("network-snapshot-"))


def _result_json(stdout: str) -> dict[str, Any]:
    """The summary JSON `tryon train` prints last (after its progress lines)."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))  # type: ignore[no-any-return]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_tiny64_defaults_to_batch_8_on_the_cpu_and_the_presets_batch_elsewhere() -> None:
    # Batch 8 won the equal-CPU-minutes comparison (benchmarks/bench_recipes.py); gamma and the EMA follow it.
    info = {"size": 8, "resolution": 64, "channels": 3, "label_dim": 0}
    args = _parse(["--data", "x.zip", "--outdir", "o", "--cfg", "tiny64"])
    cpu = resolve_options(args, device="cpu", dataset_info=info)
    assert (cpu.batch, cpu.gamma, cpu.ema_kimg) == (8, pytest.approx(0.1024), pytest.approx(2.5))
    assert resolve_options(args, device="cuda", dataset_info=info).batch == 32
    explicit = _parse(["--data", "x.zip", "--outdir", "o", "--cfg", "tiny64", "--batch", "16"])
    assert resolve_options(explicit, device="cpu", dataset_info=info).batch == 16
    small = _parse(["--data", "x.zip", "--outdir", "o", "--cfg", "small128"])
    assert resolve_options(small, device="cpu", dataset_info={**info, "resolution": 128}).batch == 32


def test_cli_run_writes_snapshot_grid_log_and_options(four_step_run: Path) -> None:
    run_dir = four_step_run
    names = {p.name for p in run_dir.iterdir()}
    assert {"training_options.json", "log.jsonl", "loss.png", "reals.png", "fakes_init.png", "grid.json"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)

    opts = json.loads((run_dir / "training_options.json").read_text())
    assert opts["cfg"] == "tiny64" and opts["batch"] == 4 and opts["c_dim"] == 5 and opts["run_dir"] == str(run_dir)

    entries = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    last = entries[-1]
    assert last["kimg"] == pytest.approx(4 * STEP_KIMG) and last["step"] == 4
    for key in ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty", "Loss/scores/real"):
        assert np.isfinite(last[key]), key

    (snap,) = _snapshots(run_dir)
    assert {"config.json", "G.safetensors", "D.safetensors", "G_ema.safetensors", "resume.json",
            "resume.safetensors", "samples.png"} <= {p.name for p in snap.iterdir()}
    ckpt = load_checkpoint(snap, names=("G_ema",))
    assert ckpt.label_schema is not None
    assert [c["name"] for c in ckpt.label_schema["columns"]] == ["articleType", "gender"]
    # The training set's label combinations, for `tryon generate` without --label.
    distribution = (ckpt.training or {})["label_distribution"]
    assert distribution["total"] == 12 and sum(e["count"] for e in distribution["combinations"]) == 12
    assert all(set(e["labels"]) == {"articleType", "gender"} for e in distribution["combinations"])
    G = ckpt.networks["G_ema"]
    img = G(torch.randn(2, G.z_dim), torch.eye(5)[:2], noise_mode="const")
    assert img.shape == (2, 3, 64, 64) and torch.isfinite(img).all()


def test_tensorboard_events_hold_the_losses(four_step_run: Path) -> None:
    tbx = pytest.importorskip("tensorboardX")
    from tensorboardX.proto import event_pb2

    (events,) = four_step_run.glob("events.out.tfevents*")
    data = events.read_bytes()
    tags = set()
    pos = 0
    while pos < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc.
        n = int.from_bytes(data[pos : pos + 8], "little")
        event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
        tags.update(v.tag for v in event.summary.value)
        pos += 12 + n + 4
    assert tbx is not None and {"Loss/G/loss", "Loss/D/loss", "Progress/augment_p"} <= tags


def test_resume_continues_bit_identically(data_zip: Path, four_step_run: Path, tmp_path: Path) -> None:
    """4 steps in one go == 2 steps, snapshot, resume, 2 more steps: every weight and state, exactly."""
    outdir = tmp_path / "runs"
    argv = ["train", "--data", str(data_zip), "--outdir", str(outdir), "--kimg", str(2 * STEP_KIMG), *TINY]
    assert tryon_main(argv) == 0
    (first,) = outdir.iterdir()
    assert tryon_main(
        ["train", "--data", str(data_zip), "--outdir", str(outdir), "--kimg", str(4 * STEP_KIMG),
         "--resume", str(first), *TINY]
    ) == 0
    resumed = next(p for p in outdir.iterdir() if p != first)
    a = _snapshots(four_step_run)[-1]
    b = _snapshots(resumed)[-1]
    assert a.name == b.name
    for file in ("G.safetensors", "D.safetensors", "G_ema.safetensors", "resume.safetensors"):
        ta = safetensors.torch.load_file(a / file)
        tb = safetensors.torch.load_file(b / file)
        assert ta.keys() == tb.keys()
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{file}: {key} differs"
    ja, jb = json.loads((a / "resume.json").read_text()), json.loads((b / "resume.json").read_text())
    for key in ("cur_nimg", "batch_idx", "augment_p", "ada", "seed"):
        assert ja[key] == jb[key], key
    assert ja["augment_p"] >= 0.2 + 2 * 0.04  # ADA moved p, so its state crossed the resume.


def test_snapshot_loads_without_unpickling(four_step_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    networks, _, resume = load_snapshot(four_step_run)
    assert set(networks) == {"G", "D", "G_ema"}
    assert resume is not None and resume.batch_idx == 4 and set(resume.optimizers) == {"G", "D"}
    assert resume.optimizers["G"]["state"][0]["exp_avg"].abs().sum() > 0


def _trainer(data_zip: Path, extra: list[str] | None = None) -> Trainer:
    args = _parse(["--data", str(data_zip), "--outdir", "unused", *TINY, *(extra or [])])
    opts = resolve_options(args, world_size=1, device="cpu")
    info = dist.DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), backend=None)
    data = RealImages(open_dataset(data_zip), batch=opts.batch, rank=0, world_size=1, seed=opts.seed,
                      device=info.device, workers=0, c_dim=opts.c_dim)
    return Trainer(opts, info, data)


def test_streamed_batches_equal_preloaded_ones(data_zip: Path) -> None:
    """The DataLoader path (--preload off, a worker process) feeds exactly the preloaded batches."""
    ds = open_dataset(data_zip)
    common = dict(batch=8, rank=0, world_size=1, seed=3, device=torch.device("cpu"), c_dim=5)
    pre = RealImages(ds, preload="on", workers=0, **common)  # type: ignore[arg-type]
    streamed = RealImages(ds, preload="off", workers=1, **common)  # type: ignore[arg-type]
    assert pre.preloaded and not streamed.preloaded
    for step in (0, 1, 2, 5):  # 12 images, batch 8: steps cross epochs; 5 restarts the stream.
        (a_img, a_c), (b_img, b_c) = pre.get(step), streamed.get(step)
        assert torch.equal(a_img, b_img) and torch.equal(a_c, b_c)
    # Every epoch is a permutation of the data.
    seen = np.concatenate([pre.global_indices(s) for s in range(3)])[:12]
    assert sorted(seen.tolist()) == list(range(12))


def test_lazy_regularisation_intervals_and_lr_correction(data_zip: Path) -> None:
    trainer = _trainer(data_zip)
    calls: list[tuple[int, str]] = []
    inner = trainer.loss.accumulate_gradients

    def record(phase: str, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        calls.append((trainer.batch_idx, phase))
        return inner(phase, *args, **kwargs)

    trainer.loss.accumulate_gradients = record  # type: ignore[method-assign]
    for _ in range(7):
        trainer.step()
    steps = {phase: [s for s, p in calls if p == phase] for phase in ("Gmain", "Greg", "Dmain", "Dreg")}
    assert steps["Gmain"] == steps["Dmain"] == list(range(7))
    assert steps["Greg"] == [0, 2, 4, 6]
    assert steps["Dreg"] == [0, 3, 6]
    # Lazy regularisation: lr * I / (I + 1) and beta ** (I / (I + 1)).
    assert trainer.opt_G.param_groups[0]["lr"] == pytest.approx(0.0025 * 2 / 3)
    assert trainer.opt_D.param_groups[0]["lr"] == pytest.approx(0.0025 * 3 / 4)
    assert trainer.opt_D.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (3 / 4))
    assert trainer.cur_nimg == 7 * 4


def test_resume_state_keeps_the_ada_signs_between_adjustments(data_zip: Path) -> None:
    trainer = _trainer(data_zip, ["--ada-interval", "4"])
    for _ in range(2):
        trainer.step()
    trainer.gather_ada_signs()
    ada = trainer.resume_state().ada
    # Dmain on 2 steps x 4 reals, plus Dreg (R1 every 3 steps: step 0) on 4 reals.
    assert ada["sign_count"] == 12 and abs(ada["sign_sum"]) <= 12


def test_losses_are_finite_and_d_learns(data_zip: Path) -> None:
    trainer = _trainer(data_zip, ["--aug", "noaug", "--d-reg-interval", "16", "--lr", "0.005"])
    d_losses = []
    for _ in range(12):
        trainer.step()
        stats = trainer.stats.reduce(["Loss/D/loss", "Loss/G/loss"])
        assert all(np.isfinite(v) for v in stats.values())
        d_losses.append(stats["Loss/D/loss"])
    # D starts near 2 ln 2 (it cannot tell reals from fakes) and learns to separate them.
    assert d_losses[0] == pytest.approx(2 * np.log(2), abs=0.15)
    assert np.mean(d_losses[-4:]) < d_losses[0] - 0.05
    for p in trainer.G.parameters():
        assert torch.isfinite(p).all()


def test_ema_tracks_g_with_rampup(data_zip: Path) -> None:
    trainer = _trainer(data_zip)
    trainer.step()  # At 0 images seen the ramp-up makes the EMA half-life 0: G_ema = G.
    for p_ema, p in zip(trainer.G_ema.parameters(), trainer.G.parameters(), strict=True):
        assert torch.equal(p_ema, p)
    trainer.step()
    pairs = zip(trainer.G_ema.parameters(), trainer.G.parameters(), strict=True)
    assert max((p_ema - p).abs().max().item() for p_ema, p in pairs) > 0


def test_max_minutes_stops_cleanly_with_a_snapshot(
    data_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = tryon_main(["train", "--data", str(data_zip), "--outdir", str(tmp_path), "--kimg", "100",
                     "--max-minutes", "0.0001", *TINY])
    assert rc == 0
    result = _result_json(capsys.readouterr().out)
    assert result["stopped_by"] == "time" and result["kimg"] < 100
    (run_dir,) = tmp_path.iterdir()
    assert len(_snapshots(run_dir)) == 1


def test_sigterm_stops_after_the_step_with_a_snapshot_that_resumes(data_zip: Path, tmp_path: Path) -> None:
    """A preempted run (SIGTERM) writes a snapshot with resume state and exits 0; the run resumes."""
    outdir = tmp_path / "runs"
    argv = [sys.executable, "-m", "tryon.cli", "train", "--data", str(data_zip), "--outdir", str(outdir),
            "--kimg", "100", "--tick", str(STEP_KIMG), "--snap", "1000", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # Wait until it trains: the first tick line.
            lines.append(line)
            if line.startswith("tick "):
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "SIGTERM received" in out
    result = _result_json(out)
    assert result["stopped_by"] == "signal" and result["kimg"] < 100
    (run_dir,) = outdir.iterdir()
    (snapshot,) = _snapshots(run_dir)  # --snap 1000: only the stop wrote one.
    networks, _, resume = load_snapshot(snapshot)
    assert resume is not None and "G_ema" in networks
    assert tryon_main(["train", "--data", str(data_zip), "--outdir", str(outdir), "--resume", str(run_dir),
                       "--kimg", str(result["kimg"] + STEP_KIMG), *TINY]) == 0


def test_dry_run_prints_options_and_writes_nothing(
    data_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = tmp_path / "runs"
    assert tryon_main(["train", "--data", str(data_zip), "--outdir", str(outdir), "--dry-run", *TINY]) == 0
    opts = json.loads(capsys.readouterr().out)
    assert opts["G_kwargs"]["c_dim"] == 5 and opts["gamma"] == pytest.approx(0.0002 * 64**2 / 4)
    assert opts["D_kwargs"]["epilogue_kwargs"]["mbstd_group_size"] == 4
    assert not outdir.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{missing}"], "no such dataset"),
        (["--data", "{zip32}"], "holds 32x32 images but --cfg tiny64 trains at 64x64"),
        (["--data", "{zip}", "--batch", "6"], "not a multiple of the minibatch-stddev group 4"),
        (["--data", "{zip}", "--batch", "8", "--batch-gpu", "3"], "--batch-gpu 3 must divide"),
        (["--data", "{zip}", "--amp", "fp16"], "needs a CUDA device"),
        (["--data", "{zip}", "--resume", "{missing}"], "no such run or snapshot"),
    ],
)
def test_bad_input_gives_one_line_error(
    args: list[str], message: str, data_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zip32 = write_test_zip(tmp_path / "small.zip", num_images=4, resolution=32)
    subst = {"{missing}": str(tmp_path / "nope.zip"), "{zip32}": str(zip32), "{zip}": str(data_zip)}
    argv = ["train", "--outdir", str(tmp_path / "runs"), "--kimg", "0.004", *TINY, *[subst.get(a, a) for a in args]]
    assert tryon_main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_batch_must_split_over_processes(data_zip: Path) -> None:
    args = _parse(["--data", str(data_zip), "--outdir", "x", *TINY])
    args.batch = 8
    with pytest.raises(InputError, match="not divisible by the number of processes"):
        resolve_options(args, world_size=3, device="cpu")


def test_resume_with_another_architecture_is_refused(four_step_run: Path, data_zip: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--data", str(data_zip), "--outdir", str(tmp_path), "--kimg", "0.008", "--resume",
            str(four_step_run), *TINY, "--channel-max", "32"]
    assert tryon_main(argv) == 1
    assert "does not fit the network these options build" in capsys.readouterr().err


def test_unconditional_training_ignores_labels(data_zip: Path) -> None:
    trainer = _trainer(data_zip, ["--no-cond"])
    assert trainer.G.c_dim == 0 and trainer.D.c_dim == 0
    trainer.step()
    assert trainer.cur_nimg == 4


def test_gpu_run_script_exports_at_most_8_small_files(data_zip: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The fixed-wall-time script, on the CPU for a few steps: compact export, loadable G_ema."""
    from training import gpu_run

    export = tmp_path / "export"
    argv = ["--data", str(data_zip), "--outdir", str(tmp_path / "runs"), "--export", str(export),
            "--minutes", "10", "--kimg", str(2 * STEP_KIMG), "--device", "cpu", "--workers", "0", *TINY,
            "--ops", "auto"]  # The script's own default: compiled kernels where they exist.
    assert gpu_run.main(argv) == 0
    out = capsys.readouterr().out
    assert "s/kimg" in out and "peak memory" in out
    files = sorted(p.name for p in export.iterdir())
    assert len(files) <= gpu_run.MAX_FILES
    assert {"config.json", "G_ema.safetensors", "D.safetensors", "samples.png", "summary.json"} <= set(files)
    assert all(p.stat().st_size <= 16 << 20 for p in export.iterdir())
    summary = json.loads((export / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["sec_per_kimg"] > 0 and summary["peak_mem_gib"] > 0
    ckpt = load_checkpoint(export, names=("G_ema", "D"))
    assert ckpt.label_schema is not None


def test_gpu_run_refuses_networks_over_16_mib(data_zip: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from training import gpu_run

    argv = ["--data", str(data_zip), "--outdir", str(tmp_path / "runs"), "--export", str(tmp_path / "e"),
            "--minutes", "1", "--device", "cpu", *TINY, "--channel-base", "65536", "--channel-max", "512"]
    assert gpu_run.main(argv) == 1
    assert "over the 16 MiB limit" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_periodic_metrics_are_logged_and_plotted(data_zip: Path, tmp_path: Path) -> None:
    from training_zip import SCHEMA

    from training.feature_net import FeatureNet, save_feature_net

    torch.manual_seed(0)
    net = FeatureNet(SCHEMA, resolution=16, channels=(8, 16), feature_dim=8, holdout_fraction=0.5)
    save_feature_net(tmp_path / "fnet", net.eval(), {"note": "random, for tests"})
    argv = ["train", "--data", str(data_zip), "--outdir", str(tmp_path / "runs"), "--kimg", str(2 * STEP_KIMG),
            *TINY, "--metrics-every", "1", "--feature-net", str(tmp_path / "fnet"), "--metrics", "fd,cond_acc",
            "--metrics-num-gen", "8"]
    assert tryon_main(argv) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    last = json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(last["metrics"]["fd"]) and 0 <= last["metrics"]["cond_acc"] <= 1
    assert (run_dir / "metrics.png").is_file()


def test_bf16_autocast_path_trains_with_both_regularisers(data_zip: Path) -> None:
    """bf16 mixed precision is for CUDA; CPU autocast exercises the same code (G synthesis and D under
    autocast, mapping in fp32, R1 and path length through it)."""
    trainer = _trainer(data_zip)
    trainer.loss.autocast_dtype = torch.bfloat16
    trainer.loss.G_train.autocast_dtype = torch.bfloat16  # type: ignore[union-attr]
    trainer.step()
    stats = trainer.stats.reduce(["Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty"])
    assert len(stats) == 4 and all(np.isfinite(v) for v in stats.values())


def test_jpeg_zip_and_warm_start_from_a_compact_export(data_zip: Path, tmp_path: Path) -> None:
    """A dataset of JPEG members trains; a G_ema + D export (no G, no optimiser state) warm-starts."""
    from training import gpu_run

    jpeg_zip = write_test_zip(tmp_path / "jpeg64.zip", num_images=8, resolution=64, fmt="jpg")
    export = tmp_path / "export"
    assert gpu_run.main(["--data", str(jpeg_zip), "--outdir", str(tmp_path / "runs"), "--export", str(export),
                         "--minutes", "10", "--kimg", str(STEP_KIMG), "--device", "cpu", *TINY]) == 0
    argv = ["train", "--data", str(jpeg_zip), "--outdir", str(tmp_path / "more"), "--kimg", str(2 * STEP_KIMG),
            "--resume", str(export), *TINY]
    assert tryon_main(argv) == 0
    (run_dir,) = (tmp_path / "more").iterdir()
    assert json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])["step"] == 2
