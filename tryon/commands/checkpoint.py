"""`tryon convert-checkpoint NETWORK.pkl OUT_DIR`: import an NVlabs snapshot without running its code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tryon.errors import InputError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "convert-checkpoint",
        help="convert an NVlabs stylegan2-ada-pytorch .pkl into a tryon checkpoint (safetensors + JSON)",
        description=(
            "Convert an NVlabs stylegan2-ada-pytorch snapshot (network-snapshot-*.pkl) into a tryon "
            "checkpoint folder (G_ema, G, D as safetensors + config.json). The pickle is read with a "
            "restricted unpickler: code stored in it is never run, and a pickle that asks for anything "
            "outside the allow-list is refused."
        ),
    )
    parser.add_argument("pkl", metavar="NETWORK.pkl", help="NVlabs network pickle")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="checkpoint folder to create")
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it is an existing checkpoint")
    parser.add_argument(
        "--label-schema",
        metavar="JSON",
        help='label names for a conditional G: {"columns": [{"name": ..., "values": [...]}, ...]}',
    )
    parser.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from tryon.checkpoint import convert_nvlabs_pickle, load_checkpoint

    schema = _read_json(args.label_schema) if args.label_schema else None
    out = convert_nvlabs_pickle(args.pkl, args.out_dir, label_schema=schema, overwrite=args.force)
    ckpt = load_checkpoint(out, names=None)  # Proves the result loads strictly.
    G = ckpt.networks["G_ema"]
    print(
        f"wrote {out}: {', '.join(ckpt.networks)} "
        f"({G.img_resolution}x{G.img_resolution}, z_dim={G.z_dim}, c_dim={G.c_dim})"
    )
    return 0


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc


def register_export(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="copy the serving networks of a training snapshot into a checkpoint folder (e.g. tryon/assets/face)",
        description=(
            "Copy networks of a `tryon train` snapshot (network-snapshot-*) into a checkpoint folder to "
            "serve or ship: by default G_ema (what the services render with) and D (whose features the "
            "projections use), with the label schema and training metadata, the snapshot's sample grid "
            "as sample_grid.png, and the MODEL_CARD.md of the folder it replaces (update it)."
        ),
    )
    parser.add_argument("snapshot", metavar="SNAPSHOT", help="a snapshot folder of a training run")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="checkpoint folder to create or (--force) replace")
    parser.add_argument("--networks", default="G_ema,D", help="comma-separated networks to keep (G_ema,D)")
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it is an existing checkpoint")
    parser.add_argument("--campaign", metavar="DIR", default=None,
                        help="the training campaign the run belongs to (training/campaign/MODEL): record the "
                             "campaign's kimg (its kimg_offset + the run's) instead of the run's")
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from tryon.checkpoint import export_checkpoint

    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    offset = 0.0
    if args.campaign is not None:
        file = Path(args.campaign) / "campaign.json"
        try:
            offset = float(json.loads(file.read_text(encoding="utf-8")).get("kimg_offset", 0.0))
        except (OSError, ValueError, AttributeError) as e:
            raise InputError(f"--campaign: cannot read {file}: {e}") from e
    out = export_checkpoint(args.snapshot, args.out_dir, names=names, overwrite=args.force, kimg_offset=offset)
    doc = json.loads((out / "config.json").read_text(encoding="utf-8"))
    kimg = (doc.get("training") or {}).get("kimg")
    size = sum(p.stat().st_size for p in out.iterdir() if p.suffix == ".safetensors") / 2**20
    print(f"wrote {out}: {', '.join(doc['networks'])} ({size:.1f} MiB), kimg {kimg}")
    return 0
