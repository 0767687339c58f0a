"""Benchmarks: ``wardwatch bench ingest|detectors|checkpoint|alerts|pipeline``, each against a baseline
measured in the same run, and ``plan``, the sizing table computed from their results. ``--json`` prints one JSON object."""

from __future__ import annotations

import argparse
import importlib

TARGETS = {
    "ingest": "benchmarks.ingest",
    "detectors": "benchmarks.detectors",
    "checkpoint": "benchmarks.checkpoint",
    "alerts": "benchmarks.alerts",
    "pipeline": "benchmarks.pipeline",
    "plan": "benchmarks.plan",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="target", required=True)
    for name, module_name in TARGETS.items():
        sp = sub.add_parser(name)
        sp.add_argument("--json", action="store_true", help="one JSON object on standard output")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        if hasattr(module, "add_arguments"):
            module.add_arguments(sp)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(TARGETS[args.target])
    return int(module.run(args) or 0)
