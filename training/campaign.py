"""The training campaign: the run's snapshot packed into the repository (training/pack.py), and its
history.

`campaign.json` beside the pack records the campaign: what it started from and one row per session
(kimg, CPU-hours, metrics); `plot_history` draws it. `tryon campaign pack | record | show` are the
verbs (training/commands.py registers them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from training.pack import PACK_FILE, is_pack, pack_folder, read_pack, unpack_snapshot
from tryon.errors import InputError

__all__ = [
    "HISTORY_FILE",
    "PACK_FILE",
    "add_session",
    "is_pack",
    "load_history",
    "pack_snapshot",
    "plot_history",
    "read_pack",
    "unpack_snapshot",
]

HISTORY_FILE = "campaign.json"


def pack_snapshot(snapshot: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Pack a snapshot folder (or a run folder's latest snapshot) into OUT_DIR/snapshot.pack.xz.

    Returns {"file", "bytes", "raw_bytes", "snapshot", "zeroed"}; see `training.pack.pack_folder`.
    """
    from training.snapshot import find_snapshot  # Imports torch: only when packing.

    return pack_folder(find_snapshot(snapshot), out_dir)


# ----------------------------------------------------------------------------------------------------
# History.


def load_history(campaign_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(campaign_dir) / HISTORY_FILE
    if not path.is_file():
        return {"model": Path(campaign_dir).name, "started_from": None, "sessions": []}
    return json.loads(path.read_text())


def add_session(campaign_dir: str | os.PathLike[str], row: Mapping[str, Any]) -> dict[str, Any]:
    """Append one session's row (kimg, cpu_hours, metrics …) to campaign.json; returns the history."""
    history = load_history(campaign_dir)
    history["sessions"].append(dict(row))
    path = Path(campaign_dir) / HISTORY_FILE
    path.write_text(json.dumps(history, indent=1) + "\n")
    return history


def plot_history(rows: Iterable[Mapping[str, Any]], keys: Iterable[str], out: str | os.PathLike[str]) -> None:
    """A small PNG: each metric in KEYS against campaign kimg (one panel per metric)."""
    from PIL import Image, ImageDraw

    rows = [r for r in rows if "kimg" in r]
    keys = list(keys)
    w, h, pad = 260, 170, 34
    img = Image.new("RGB", (w * len(keys), h), "white")
    draw = ImageDraw.Draw(img)
    xs = [float(r["kimg"]) for r in rows]
    for i, key in enumerate(keys):
        ox = i * w
        pts = [(float(r["kimg"]), float(r[key])) for r in rows if r.get(key) is not None]
        draw.rectangle([ox + pad, 10, ox + w - 10, h - pad], outline="black")
        draw.text((ox + pad + 4, 12), key, fill="black")
        if not pts:
            continue
        x0, x1 = min(xs), max(max(xs), min(xs) + 1e-9)
        ys = [y for _, y in pts]
        y0, y1 = min(ys), max(max(ys), min(ys) + 1e-9)

        def at(x: float, y: float, ox: int = ox, x0: float = x0, x1: float = x1, y0: float = y0,
               y1: float = y1) -> tuple[float, float]:
            return (ox + pad + (x - x0) / (x1 - x0) * (w - pad - 14) + 2,
                    h - pad - 4 - (y - y0) / (y1 - y0) * (h - pad - 30))

        xy = [at(x, y) for x, y in pts]
        if len(xy) > 1:
            draw.line(xy, fill=(30, 90, 200), width=2)
        for px, py in xy:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=(30, 90, 200))
        draw.text((ox + 2, 12), f"{y1:.3g}", fill="gray")
        draw.text((ox + 2, h - pad - 12), f"{y0:.3g}", fill="gray")
        draw.text((ox + pad, h - pad + 4), f"{x0:.0f}", fill="gray")
        draw.text((ox + w - 50, h - pad + 4), f"{x1:.0f} kimg", fill="gray")
    img.save(out)


# ----------------------------------------------------------------------------------------------------
# `tryon campaign …`

PLOT_FILE = "campaign.png"
_TABLE_KEYS = ("kimg", "cpu_hours", "fd", "kid", "precision", "recall", "cond_acc")


def run_pack(args: Any) -> int:
    info = pack_snapshot(args.snapshot, args.campaign_dir)
    print(f"packed {info['snapshot']} into {info['file']}: {info['bytes'] / 2**20:.1f} MiB "
          f"({info['raw_bytes'] / 2**20:.1f} MiB unpacked, {info['zeroed']} first moments stored as zeros)")
    return 0


def run_record(args: Any) -> int:
    row: dict[str, Any] = {"kimg": args.kimg, "cpu_hours": args.cpu_hours}
    if args.metrics:
        try:
            metrics = json.loads(Path(args.metrics).read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"--metrics {args.metrics}: {e}") from e
        row.update({k: v for k, v in (metrics.get("results", metrics)).items() if isinstance(v, (int, float))})
    row["note"], row["shipped"] = args.note, bool(args.shipped)
    history = add_session(args.campaign_dir, row)
    keys = [k for k in ("fd", "recall", "cond_acc") if any(k in r for r in history["sessions"])]
    if keys:
        plot_history(history["sessions"], keys, Path(args.campaign_dir) / PLOT_FILE)
    print(format_table(history["sessions"]))
    return 0


def run_show(args: Any) -> int:
    print(format_table(load_history(args.campaign_dir)["sessions"]))
    return 0


def format_table(rows: list[Mapping[str, Any]]) -> str:
    """A markdown table of the campaign's rows (the model cards carry it)."""
    extra = sorted({k for r in rows for k in r if k.startswith("cond_acc/") and not k.startswith("cond_acc_real")})
    keys = [*_TABLE_KEYS, *extra, "shipped"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            cells.append("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
