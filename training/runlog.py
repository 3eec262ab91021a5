"""The run folder and its log (main process only): the folder's name (`make_run_dir`), log.jsonl,
TensorBoard events, loss.png / metrics.png, and the progress line printed per tick."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"


def make_run_dir(outdir: str | os.PathLike[str], desc: str) -> Path:
    """`outdir/00007-desc`: the next free run id."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ids = [int(m.group(1)) for p in outdir.iterdir() if (m := re.match(r"^(\d+)-", p.name))]
    run_id = max(ids, default=-1) + 1
    while True:
        run_dir = outdir / f"{run_id:05d}-{desc}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            run_id += 1


def write_plots(run_dir: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """loss.png (losses, scores, augmentation, speed) and metrics.png (if any) from the tick log."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not history:
        return
    kimg = [h["kimg"] for h in history]
    panels = [
        ("G loss", ["Loss/G/loss"]),
        ("D loss", ["Loss/D/loss"]),
        ("regularisers", ["Loss/r1_penalty", "Loss/pl_penalty"]),
        ("D scores", ["Loss/scores/real", "Loss/scores/fake"]),
        ("augmentation", ["Progress/augment_p", "Loss/signs/real"]),
        ("speed (s/kimg)", ["Timing/sec_per_kimg"]),
    ]
    fig = Figure(figsize=(12, 6.5), dpi=80)
    FigureCanvasAgg(fig)
    for i, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(2, 3, i + 1)
        plotted = 0
        for key in keys:
            xs = [k for k, h in zip(kimg, history, strict=True) if key in h]
            ys = [h[key] for h in history if key in h]
            if ys:
                ax.plot(xs, ys, marker="." if len(ys) < 30 else None, label=key.split("/", 1)[-1])
                plotted += 1
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("kimg", fontsize=8)
        ax.tick_params(labelsize=8)
        if len(keys) > 1 and plotted:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(run_dir / "loss.png")

    metric_rows = [(h["kimg"], h["metrics"]) for h in history if h.get("metrics")]
    if metric_rows:
        names = sorted({k for _, m in metric_rows for k in m if "/" not in k and not k.startswith("num_")})
        fig = Figure(figsize=(4 * min(len(names), 4), 3.2 * math.ceil(len(names) / 4)), dpi=80)
        FigureCanvasAgg(fig)
        for i, name in enumerate(names):
            ax = fig.add_subplot(math.ceil(len(names) / 4), min(len(names), 4), i + 1)
            pts = [(k, m[name]) for k, m in metric_rows if name in m]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("kimg", fontsize=8)
            ax.tick_params(labelsize=8)
        fig.tight_layout()
        fig.savefig(run_dir / "metrics.png")


class RunLog:
    """log.jsonl + TensorBoard events + plots (main process only)."""

    def __init__(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        self.run_dir = run_dir
        self.history = history
        self._file = open(run_dir / LOG_FILE, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._tb: Any = None
        try:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(run_dir))
        except ImportError:
            log.warning("tensorboardX is not installed: no TensorBoard events")

    def write(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(entry["nimg"])
            for key, value in entry.items():
                if "/" in key and isinstance(value, int | float):
                    self._tb.add_scalar(key, value, global_step=step, walltime=entry["timestamp"])
            for key, value in (entry.get("metrics") or {}).items():
                if isinstance(value, int | float):
                    self._tb.add_scalar(f"Metrics/{key}", value, global_step=step, walltime=entry["timestamp"])
            self._tb.flush()
        write_plots(self.run_dir, self.history)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def tick_line(e: Mapping[str, Any]) -> str:
    """The progress line of one tick's log entry (kimg, time, speed, losses, augmentation, metrics)."""
    parts = [f"tick {e['tick']:<4d}", f"kimg {e['kimg']:<9.3f}", f"time {_fmt_time(e['time_s']):<8s}"]
    if "Timing/sec_per_kimg" in e:
        parts.append(f"sec/kimg {e['Timing/sec_per_kimg']:<7.2f}")
    for key, label in (("Loss/G/loss", "G"), ("Loss/D/loss", "D"), ("Loss/r1_penalty", "r1"),
                       ("Progress/augment_p", "aug"), ("Resources/peak_mem_gib", "mem")):
        if key in e:
            parts.append(f"{label} {e[key]:.3f}")
    for key, value in (e.get("metrics") or {}).items():
        if "/" not in key and not key.startswith("num_"):
            parts.append(f"{key} {value:.4g}")
    return "  ".join(parts)


def _fmt_time(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s // 60 % 60:02d}m"
