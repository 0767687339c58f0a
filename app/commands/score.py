"""Score a CinC 2019 file offline through the worker's detectors."""

from __future__ import annotations

import argparse

from detectors import offline


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="CinC 2019 CSV, gzip or plain")
    p.add_argument("--output", required=True)


def run(args: argparse.Namespace) -> int:
    return offline.score_file(args.input, args.output)
