"""Compare WardWatch's risk and alarms with NEWS2 on CinC data: CIs, calibration, subgroups."""

from __future__ import annotations

import argparse

from app.commands import missing_extra
from detectors import evaluate


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default="../shared/data/cinc2019/cinc2019_setB_dev.csv.gz")
    p.add_argument("--split", choices=["test", "tune", "train", "all"], default="test")
    p.add_argument("--plot", default="early-warning-reliability.png",
                   help="where to write the reliability plot (PNG); empty: none")
    p.add_argument("--json", action="store_true", help="print every figure as one JSON object")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples of patients for the 95 %% CIs")


def run(args: argparse.Namespace) -> int:
    if missing_extra("evaluate", "train", {"sklearn": "scikit-learn", "matplotlib": "matplotlib"}):
        return 2
    return evaluate.evaluate_file(args.input, args.split, getattr(args, "json", False), args.plot or None,
                                  args.bootstrap)
