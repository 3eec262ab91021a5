"""`tryon generate` (images from a checkpoint, by seed and label) and `tryon labels` (what labels it has).

    tryon generate --checkpoint DIR --label articleType=Tshirts --label gender=Men --seeds 0-15 \\
        --truncation 0.7 --out grid.png        # one grid image
    tryon generate --checkpoint DIR --class-index 3 --seeds 1,5,9 --out samples/   # seed0001.png, ...
    tryon labels                               # the shipped fashion model's labels
    tryon generate --seeds 0-7 --out grid.png  # the shipped model; labels drawn from its training data

Latents follow NVlabs' generate.py: z = np.random.RandomState(seed).randn(z_dim), so a seed gives
the same image here as there, and the same image whatever other seeds are generated with it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tryon.errors import CheckpointError, InputError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from tryon.labels import LabelDistribution, LabelSchema
    from tryon.nn import Generator

log = logging.getLogger(__name__)

SHIPPED_HELP = "the shipped fashion model, tryon/assets/fashion"
_MAX_SEED = 2**32 - 1                   # np.random.RandomState accepts 0 .. 2**32 - 1.
_GRID_SUFFIXES = (".png", ".jpg", ".jpeg")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate images from a checkpoint by seed (and label)",
        description=(
            "Generate images with a checkpoint's generator. --out ending in '/' writes one PNG per seed "
            "(seed0000.png, ...); otherwise one grid image. Labels are NAME=VALUE pairs from the "
            "checkpoint's label schema (see `tryon labels`), or raw indices into the label vector. Without "
            "any, a conditional generator gets for each seed a label combination drawn from its training "
            "data (in proportion to how often it occurs there), and the command says which."
        ),
    )
    parser.add_argument("--checkpoint", metavar="DIR", help=f"checkpoint folder (default: {SHIPPED_HELP})")
    parser.add_argument("--network", default="G_ema", help="which generator of the checkpoint (default G_ema)")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=VALUE|INDEX",
        help="a label by name (e.g. articleType=Tshirts) or a raw index into the label vector; repeatable",
    )
    parser.add_argument(
        "--class-index", action="append", type=int, default=[], metavar="I", help="set label entry I (one-hot)"
    )
    parser.add_argument("--seeds", required=True, help="seeds: a range and/or a list, e.g. 0-15 or 1,5,9")
    parser.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="truncation psi (default 1)")
    parser.add_argument("--truncation-cutoff", type=int, default=None, metavar="N", help="truncate only the first N ws")
    parser.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    parser.add_argument("--cols", type=int, default=None, help="grid columns (default: a near-square grid)")
    parser.add_argument("--out", required=True, metavar="X", help="grid image file, or a folder ending in '/'")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.set_defaults(func=run_generate)


def register_labels(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "labels",
        help="list the labels a checkpoint's generator is conditioned on",
        description="List the label names and values that `tryon generate --label NAME=VALUE` accepts.",
    )
    parser.add_argument("--checkpoint", metavar="DIR", help=f"checkpoint folder (default: {SHIPPED_HELP})")
    parser.add_argument("--network", default="G_ema", help="which generator of the checkpoint (default G_ema)")
    parser.add_argument("--json", action="store_true", help="print the label schema as JSON")
    parser.add_argument(
        "--record-distribution",
        metavar="DATA.zip",
        help="count the label combinations of a dataset zip (the model's training set) and write them to "
        "DIR/label_distribution.json, where `tryon generate` without --label draws from them",
    )
    parser.set_defaults(func=run_labels)


# ----------------------------------------------------------------------------------------------------
# Argument parsing (pure functions, tested directly).


def parse_seeds(text: str) -> list[int]:
    """'0-3,10,12-13' -> [0, 1, 2, 3, 10, 12, 13] (order kept, duplicates dropped)."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise InputError(f"bad --seeds {text!r}: use a range and/or a list, e.g. 0-15 or 1,5,9")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        if end < start:
            raise InputError(f"bad --seeds {text!r}: the range {part} runs backwards")
        if end > _MAX_SEED:
            raise InputError(f"bad --seeds {text!r}: seeds go up to {_MAX_SEED}")
        seeds.extend(range(start, end + 1))
    return list(dict.fromkeys(seeds))


def condition_vector(
    c_dim: int,
    label_schema: dict[str, Any] | None,
    labels: Sequence[str] = (),
    class_indices: Sequence[int] = (),
) -> np.ndarray:
    """Build the label vector c [c_dim] (float32) from --label / --class-index arguments.

    `labels` items are NAME=VALUE (looked up in the schema) or a bare integer index. An unconditional
    generator (c_dim 0) takes no labels; a conditional one needs at least one.
    """
    import numpy as np

    from tryon.labels import LabelSchema

    if c_dim == 0:
        if labels or class_indices:
            raise InputError("this generator is unconditional: it takes no --label / --class-index")
        return np.zeros([0], dtype=np.float32)
    c = np.zeros([c_dim], dtype=np.float32)
    named: dict[str, str] = {}
    indices = list(class_indices)
    for item in labels:
        if "=" in item:
            name, value = (s.strip() for s in item.split("=", 1))
            if not name or not value:
                raise InputError(f"bad --label {item!r}: use NAME=VALUE or an index")
            if name in named:
                raise InputError(f"--label {name} is given twice")
            named[name] = value
        elif re.fullmatch(r"\d+", item.strip()):
            indices.append(int(item))
        else:
            raise InputError(f"bad --label {item!r}: use NAME=VALUE or an index")
    if named:
        if label_schema is None:
            raise InputError(
                f"this checkpoint has no label names; use indices: --label I or --class-index I (0..{c_dim - 1})"
            )
        schema = LabelSchema.from_json(label_schema)
        if schema.dim != c_dim:
            raise CheckpointError(f"the checkpoint's label schema has dim {schema.dim}, its generator c_dim {c_dim}")
        c += schema.encode(named)
        given = {schema.column(name).name for name in named}
        missing = [col.name for col in schema.columns if col.name not in given]
        if missing:
            log.warning("no value given for label(s) %s: their entries stay 0", ", ".join(missing))
    for index in indices:
        if not 0 <= index < c_dim:
            raise InputError(f"label index {index} is out of range: this generator has c_dim {c_dim} (0..{c_dim - 1})")
        c[index] = 1
    if not c.any():
        raise InputError(
            f"this generator is conditional (c_dim {c_dim}): give --label NAME=VALUE "
            "(see `tryon labels --checkpoint DIR`) or --class-index I"
        )
    return c


# Draws of label combinations use their own stream, so that a seed's combination does not depend
# on the other seeds, nor its latent (RandomState(seed), as NVlabs) on the draw.
_LABEL_DRAW_STREAM = 0x1AB5


def sampled_conditions(
    c_dim: int, label_schema: dict[str, Any] | None, training: dict[str, Any] | None, seeds: Sequence[int]
) -> list[np.ndarray]:
    """A condition vector [c_dim] per seed, its label combination drawn from the checkpoint's training
    data (`training` → "label_distribution", see tryon.labels.LabelDistribution) in proportion to its
    count; each is printed ("seed 3: articleGroup=tops, ..."). Without that record the grid rows of
    the training run (its most frequent combinations) are drawn from, equally often."""
    import numpy as np

    from tryon.labels import LabelSchema

    if label_schema is None:
        raise InputError(
            f"this generator is conditional (c_dim {c_dim}) and its checkpoint names no labels: give "
            f"--label I or --class-index I (0..{c_dim - 1})"
        )
    schema = LabelSchema.from_json(label_schema)
    distribution, source = _training_distribution(schema, training or {})
    if distribution is None:
        raise InputError(
            f"this generator is conditional (c_dim {c_dim}) and its checkpoint does not record its training "
            "labels: give --label NAME=VALUE (see `tryon labels --checkpoint DIR`) or --class-index I"
        )
    print(f"no --label given: each seed gets a label combination drawn from {source}")
    conditions = []
    for seed in seeds:
        labels = distribution.sample(np.random.RandomState([_LABEL_DRAW_STREAM, seed]))
        print(f"seed {seed}: " + ", ".join(f"{k}={v}" for k, v in labels.items()))
        conditions.append(schema.encode(labels))
    return conditions


def _training_distribution(schema: LabelSchema, training: dict[str, Any]) -> tuple[LabelDistribution | None, str]:
    """(the label distribution a checkpoint records, how to say where it comes from)."""
    from tryon.labels import LabelDistribution

    raw = training.get("label_distribution")
    if raw is not None:
        distribution = LabelDistribution.from_json(raw)
        return distribution, (
            f"its training data ({len(distribution.combinations)} combinations of {distribution.total:,} images, "
            "in proportion)"
        )
    rows = (training.get("grid") or {}).get("rows") or []
    combinations = []
    for row in rows:
        pairs = [part.split("=", 1) for part in str(row).split(", ") if "=" in part]
        labels = {k: v for k, v in pairs}
        with contextlib.suppress(InputError):
            schema.encode(labels)
            combinations.append((labels, 1))
    if not combinations:
        return None, ""
    return LabelDistribution(combinations=tuple(combinations), total=len(combinations)), (
        f"the {len(combinations)} most frequent combinations of its training data (equally often)"
    )


def training_distribution(checkpoint: str, training: dict[str, Any] | None) -> dict[str, Any]:
    """A checkpoint's training record, with the label distribution recorded beside it
    (LABEL_DISTRIBUTION_FILE, see `tryon labels --record-distribution`) when its config has none."""
    from tryon.labels import recorded_distribution

    record = dict(training or {})
    distribution = recorded_distribution(Path(checkpoint), training)
    if distribution is not None:
        record["label_distribution"] = distribution.to_json()
    return record


def record_distribution(checkpoint: str, schema: LabelSchema, data: str) -> Path:
    """Count the label combinations of the dataset zip `data` (its dataset.json labels, named by its
    label_schema.json) and write them to `checkpoint`/LABEL_DISTRIBUTION_FILE. Every value must be one the
    checkpoint's schema knows (the zip is its training set)."""
    import json
    import zipfile

    import numpy as np

    from tryon.labels import LABEL_DISTRIBUTION_FILE, LabelDistribution, LabelSchema

    try:
        with zipfile.ZipFile(data) as z:
            labels = json.loads(z.read("dataset.json"))["labels"]
            zip_schema = LabelSchema.from_json(json.loads(z.read("label_schema.json")))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"--record-distribution {data}: not a labelled dataset zip ({exc})") from exc
    vectors = np.array([entry[1] for entry in labels], dtype=np.float32)
    counted = LabelDistribution.from_vectors(zip_schema, vectors)
    for combination, _ in counted.combinations:
        schema.encode(combination)  # InputError: the zip has labels this model was not trained on.
    record = {"source": f"{Path(data).name}: {counted.total:,} images", **counted.to_json()}
    out = Path(checkpoint) / LABEL_DISTRIBUTION_FILE
    rows = ",\n".join("  " + json.dumps(entry) for entry in record.pop("combinations"))  # One a line.
    head = json.dumps(record)[:-1]
    out.write_text(f'{head}, "combinations": [\n{rows}\n]}}\n', encoding="utf-8")
    return out


def checkpoint_folder(arg: str | None) -> str:
    """--checkpoint, or the shipped fashion model when it is not given."""
    if arg:
        return arg
    from tryon.config import shipped_fashion_checkpoint

    shipped = shipped_fashion_checkpoint()
    if shipped is None:
        raise InputError("no --checkpoint given and no shipped fashion model in tryon/assets/fashion")
    return str(shipped)


def _output_target(out: str) -> tuple[Path, bool]:
    """(path, is_folder) for --out; a folder ends in '/'."""
    is_folder = out.endswith("/") or out.endswith(os.sep)
    path = Path(out)
    if not is_folder:
        if path.is_dir():
            raise InputError(f"--out {out} is a folder: add a trailing '/' to write one PNG per seed")
        if path.suffix.lower() not in _GRID_SUFFIXES:
            raise InputError(f"--out {out}: a grid image must end in .png or .jpg (or give a folder ending in '/')")
    return path, is_folder


# ----------------------------------------------------------------------------------------------------
# Handlers.


def generate_images(
    G: Generator,
    seeds: Sequence[int],
    c: np.ndarray,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """One image per seed -> float [N, C, H, W] in about [-1, 1] (on the CPU).

    Each seed runs alone so that its image does not depend on the other seeds; with
    noise_mode='random' the noise comes from torch's RNG seeded with the same seed.
    """
    import numpy as np
    import torch
    from tqdm import tqdm

    z_dim = G.z_dim
    c_t = torch.from_numpy(np.asarray(c, dtype=np.float32)).reshape(1, -1).to(device)
    images = []
    with torch.no_grad():
        # disable=None: tqdm shows the bar only on a terminal.
        for seed in tqdm(seeds, desc="generate", unit="img", disable=None if progress else True):
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).to(torch.float32).to(device)
            torch.manual_seed(seed)
            img = G(z, c_t, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, noise_mode=noise_mode)
            images.append(img.cpu())
    return torch.cat(images)


def run_generate(args: argparse.Namespace) -> int:
    seeds = parse_seeds(args.seeds)
    out, is_folder = _output_target(args.out)
    if args.cols is not None and args.cols < 1:
        raise InputError("--cols must be >= 1")
    if args.truncation_cutoff is not None and args.truncation_cutoff < 0:
        raise InputError("--truncation-cutoff must be >= 0")

    import torch
    from tqdm import tqdm

    from tryon.checkpoint import load_checkpoint
    from tryon.imaging import make_grid, save_image, to_uint8
    from tryon.nn import Generator

    device = _device(args.device)
    checkpoint = checkpoint_folder(args.checkpoint)
    ckpt = load_checkpoint(checkpoint, names=(args.network,), device=device)
    G = ckpt.networks[args.network]
    if not isinstance(G, Generator):
        raise InputError(f"network {args.network!r} of {checkpoint} is not a generator")
    if G.c_dim and not args.label and not args.class_index:
        record = training_distribution(checkpoint, ckpt.training)
        conditions = sampled_conditions(G.c_dim, ckpt.label_schema, record, seeds)
    else:
        c = condition_vector(G.c_dim, ckpt.label_schema, args.label, args.class_index)
        conditions = [c] * len(seeds)
    images = to_uint8(
        torch.cat([
            generate_images(G, [seed], c, args.truncation, args.truncation_cutoff, args.noise_mode, device)
            for seed, c in zip(tqdm(seeds, desc="generate", unit="img", disable=None), conditions, strict=True)
        ])
    )
    if is_folder:
        out.mkdir(parents=True, exist_ok=True)
        for seed, image in zip(seeds, images, strict=True):
            save_image(out / f"seed{seed:04d}.png", image)
        print(f"wrote {len(seeds)} images to {out}/")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        grid = make_grid(images, args.cols)
        save_image(out, grid)
        print(f"wrote a grid of {len(seeds)} images ({grid.shape[1]}x{grid.shape[0]} px) to {out}")
    return 0


def _device(name: str) -> torch.device:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"bad --device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def run_labels(args: argparse.Namespace) -> int:
    from tryon.checkpoint import read_checkpoint_config
    from tryon.labels import LabelSchema

    checkpoint = checkpoint_folder(args.checkpoint)
    doc = read_checkpoint_config(checkpoint)
    entry = doc["networks"].get(args.network)
    if entry is None:
        raise InputError(f"checkpoint {checkpoint} has no network {args.network!r}")
    c_dim = entry["kwargs"].get("c_dim", 0)
    raw = doc.get("label_schema")
    if args.record_distribution and (not c_dim or raw is None):
        raise InputError(f"--record-distribution needs a conditional generator with label names; {checkpoint} has none")
    if args.json:
        import json

        print(json.dumps(LabelSchema.from_json(raw).to_json() if raw else None, indent=2))
        return 0
    if not c_dim:
        print(f"{checkpoint}: the generator is unconditional (no labels)")
        return 0
    if raw is None:
        print(
            f"{checkpoint}: the generator is conditional (c_dim {c_dim}) but the checkpoint has no "
            f"label names; use --label I or --class-index I with I in 0..{c_dim - 1}"
        )
        return 0
    schema = LabelSchema.from_json(raw)
    if args.record_distribution:
        out = record_distribution(checkpoint, schema, args.record_distribution)
        print(f"wrote the label combinations of {args.record_distribution} to {out}")
        return 0
    print(f"{checkpoint}: {len(schema.columns)} labels (c_dim {schema.dim}); use --label NAME=VALUE")
    for col in schema.columns:
        print(f"{col.name} ({len(col.values)} values):")
        print(textwrap.fill(", ".join(col.values), width=100, initial_indent="  ", subsequent_indent="  "))
    return 0
