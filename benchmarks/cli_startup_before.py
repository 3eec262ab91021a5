"""`tryon --help` as it ran before the training verbs' parsers moved to training/commands.py: those
four modules (and so torch and numpy) were imported to build the parser. The yardstick of
`farm-bench --vs '.venv/bin/python benchmarks/cli_startup_before.py' -- .venv/bin/tryon --help`."""

import training.face_directions
import training.face_encoder
import training.feature_net
import training.metrics  # noqa: F401
from tryon.cli import main

raise SystemExit(main(["--help"]))
