"""Compare WardWatch's risk and alarms with NEWS2 on CinC data."""

from __future__ import annotations

import argparse

from app.commands import missing_extra
from detectors import evaluate


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default="../shared/data/cinc2019/cinc2019_setB_dev.csv.gz")
    p.add_argument("--split", choices=["test", "tune", "train", "all"], default="test")


def run(args: argparse.Namespace) -> int:
    if missing_extra("evaluate", "train", {"sklearn": "scikit-learn"}):
        return 2
    return evaluate.evaluate_file(args.input, args.split, getattr(args, "json", False))
