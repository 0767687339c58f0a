"""Train the early-warning models from data."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands import missing_extra
from detectors import training


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default="../shared/data/cinc2019/cinc2019_setB_dev.csv.gz")
    p.add_argument("--out", default=str(Path(training.__file__).parent / "artefacts"))
    p.add_argument("--seed", type=int, default=training.SEED)
    p.add_argument("--cache", default=None,
                   help="keep the replayed feature matrix in this folder (default: none, replay from scratch)")


def run(args: argparse.Namespace) -> int:
    if missing_extra("train", "train", {"sklearn": "scikit-learn", "threadpoolctl": "threadpoolctl"}):
        return 2
    return training.train(args.input, args.out, args.seed, args.cache)
