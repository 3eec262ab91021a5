"""The parsers of the training verbs (`tryon metrics`, `feature-net`, `face-encoder`,
`face-directions`), kept apart from their modules so that building the `tryon` parser (every call,
`--help` included) does not import torch; each verb imports its module when it runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module
from typing import Any

ALL_METRICS = ("fd", "kid", "pr", "cond_acc")
INCEPTION_FILE = "inception-2015-12-05.pt"
GRID_FILE = "edits_grid.png"


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A verb's `func` that imports `module` only when the verb runs."""

    def run(args: argparse.Namespace) -> int:
        result: int = getattr(import_module(module), function)(args)
        return result

    run.__qualname__ = f"{module}.{function}"
    return run


def register_metrics(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="measure a generator checkpoint: FD, KID, precision/recall, conditional accuracy",
        description=(
            "Generate images with a checkpoint and compare them with the real images of a dataset zip "
            "that the domain feature network never trained on: Fréchet distance, KID and precision/"
            "recall in that network's feature space, and conditional accuracy (how often the requested "
            "label is recovered). With --inception, also standard FID/KID. Prints a table; --json writes one."
        ),
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="generator checkpoint folder")
    parser.add_argument("--data", required=True, metavar="Y.zip", help="dataset zip with the real images")
    parser.add_argument("--feature-net", metavar="DIR",
                        help="feature network checkpoint (default: the one in tryon/assets matching the labels)")
    parser.add_argument("--num-gen", type=int, default=2000, metavar="N", help="images to generate (default 2000)")
    parser.add_argument("--metrics", default=",".join(ALL_METRICS), metavar="LIST",
                        help=f"comma-separated, from {','.join(ALL_METRICS)} (default: all)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    parser.add_argument("--inception", metavar="PATH",
                        help=f"NVlabs' TorchScript {INCEPTION_FILE}: adds standard FID/KID (never downloaded)")
    parser.add_argument("--network", default="G_ema", help="network in the checkpoint (default G_ema)")
    parser.add_argument("--truncation", type=float, default=1.0, help="truncation psi (default 1 = none)")
    parser.add_argument("--noise-mode", choices=("random", "const", "none"), default="random",
                        help="the G's per-pixel noise: random (NVlabs' metrics), const (what the services render), "
                             "none")
    parser.add_argument("--real", choices=("heldout", "all"), default="heldout",
                        help="real images: the feature net's held-out split (default) or all of them")
    parser.add_argument("--max-real", type=int, metavar="N", help="use at most N real images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(func=_lazy("training.metrics", "run_metrics_cli"))


def register_feature_net(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "feature-net",
        help="train the domain feature network that `tryon metrics` measures images with",
        description=(
            "Train a small multi-head classifier on a dataset zip's labels (one head per label column) "
            "and save it as a checkpoint folder with a MODEL_CARD.md. Its embedding is the feature space "
            "of FD / KID / precision-recall, its heads measure conditional accuracy. CPU, minutes."
        ),
    )
    parser.add_argument("--data", required=True, metavar="X.zip", help="dataset zip (images + dataset.json labels)")
    parser.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder to write")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the training split (default 10)")
    parser.add_argument("--val-split", type=float, default=0.1, metavar="F",
                        help="held-out share for validation and for the metrics' real set (default 0.1)")
    parser.add_argument("--data-note", metavar="TEXT",
                        help="how the dataset zip was made (e.g. its `tryon dataset` command), for the model card")
    parser.add_argument("--columns", metavar="A,B", help="label columns to learn (default: all)")
    parser.add_argument("--resolution", type=int, default=64, help="network input resolution (default 64)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 0.002)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-images", type=int, metavar="N", help="use only the first N images")
    parser.add_argument("--no-xflip", action="store_true", help="do not augment with horizontal flips")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads (default: torch's; 1 is often faster on a busy machine)")
    parser.add_argument("--force", action="store_true", help="replace DIR if it is an existing checkpoint")
    parser.set_defaults(func=_lazy("training.feature_net", "run_feature_net_cli"))


def register_face_encoder(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "face-encoder",
        help="train the face encoder (image -> W+) for a face generator",
        description="Train the e4e-like FaceEncoder on generated (w, image) pairs and real aligned faces, and "
        "save it as a checkpoint with a MODEL_CARD.md (see training/face_encoder.py).",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output checkpoint folder (tryon/assets/face_encoder)")
    p.add_argument("--face", default=None, metavar="DIR", help="face checkpoint (G_ema + D); default the shipped one")
    p.add_argument("--data", default="data/faces64.zip", metavar="ZIP", help="aligned real faces (tryon dataset faces)")
    p.add_argument("--minutes", type=float, default=15.0, help="training loop budget, minutes (default 15)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N latent steps")
    p.add_argument("--pool", type=int, default=512, help="generated pairs (default 512)")
    p.add_argument("--batch", type=int, default=32, help="generated pairs per latent step")
    p.add_argument("--real-batch", type=int, default=8, help="real faces per image step")
    p.add_argument("--image-every", type=int, default=1, help="an image step after every N latent steps")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-real", type=int, default=None, help="use at most N training faces")
    p.add_argument("--eval-real", type=int, default=64, help="held-out faces measured at the end")
    p.add_argument("--eval-pairs", type=int, default=256, help="fresh generated pairs measured at the end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    p.set_defaults(func=_lazy("training.face_encoder", "run_face_encoder_cli"))


def register_face_directions(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "face-directions",
        help="fit the face edit directions (InterFaceGAN, SeFa, GANSpace, pose) for a face generator",
        description=(
            "Sample and render faces, label them with the attribute classifier, fit attribute directions "
            "(InterFaceGAN), SeFa and GANSpace components and a pose direction, and save them with a model card. "
            "About 7 minutes for 4,000 samples on one busy CPU thread."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder to write (e.g. tryon/assets/face_directions)")
    parser.add_argument("--checkpoint", metavar="DIR", help="face checkpoint folder (default: tryon/assets/face)")
    parser.add_argument("--classifier", metavar="DIR",
                        help="attribute classifier folder (default: the shipped face_features)")
    parser.add_argument("--samples", type=int, default=4000, help="w samples to render and label (default 4000)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="held-out share (default 0.2)")
    parser.add_argument("--probe", type=int, default=32, help="held-out faces per measurement (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-grid", action="store_true", help=f"do not write {GRID_FILE}")
    parser.add_argument("--force", action="store_true", help="replace the directions in DIR")
    parser.set_defaults(func=_lazy("training.face_directions", "run_face_directions_cli"))


def register_campaign(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="the training campaign: pack a run's snapshot into the repository, record a session's metrics",
        description=(
            "A run that continues across sessions keeps its exact resume state in the repository: `pack` "
            "writes a snapshot (G, G_ema, D, optimiser moments, ADA and RNG state) as one xz file under the "
            "campaign folder, byte-exact (Adam's first moments, which the next step overwrites when beta1 = 0, "
            "are stored as zeros); `tryon train --resume CAMPAIGN_DIR …` continues from it bit-identically. "
            "`record` appends a session's row (kimg, CPU-hours, metrics JSON) to campaign.json and redraws "
            "the campaign's plot; `show` prints the table."
        ),
    )
    sub = parser.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")
    p = sub.add_parser("pack", help="pack a run's latest snapshot (or a snapshot) into CAMPAIGN_DIR")
    p.add_argument("snapshot", metavar="RUN_OR_SNAPSHOT")
    p.add_argument("campaign_dir", metavar="CAMPAIGN_DIR", help="e.g. training/campaign/face")
    p.set_defaults(func=_lazy("training.campaign", "run_pack"))
    r = sub.add_parser("record", help="append one session's row to CAMPAIGN_DIR/campaign.json")
    r.add_argument("campaign_dir", metavar="CAMPAIGN_DIR")
    r.add_argument("--kimg", type=float, required=True, help="campaign kimg at the end of the session")
    r.add_argument("--cpu-hours", type=float, required=True, help="CPU-hours this session trained")
    r.add_argument("--metrics", metavar="JSON", help="`tryon metrics --json` output of the session's snapshot")
    r.add_argument("--note", default="", help="one line: what ran (command, threads, load)")
    r.add_argument("--shipped", action="store_true", help="this snapshot replaced the shipped model")
    r.set_defaults(func=_lazy("training.campaign", "run_record"))
    s = sub.add_parser("show", help="print CAMPAIGN_DIR's table")
    s.add_argument("campaign_dir", metavar="CAMPAIGN_DIR")
    s.set_defaults(func=_lazy("training.campaign", "run_show"))
