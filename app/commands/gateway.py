"""Replay real or synthetic readings as a device gateway (``wardwatch gateway replay``)."""

from __future__ import annotations

import argparse

from wardwatch.bus import open_bus
from wardwatch import eventloop
from wardwatch.settings import get_settings

from ingest.replay import replay


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    r = sub.add_parser("replay", help="play records at 1 Hz of wall time, the record's clock --speed times faster")
    r.add_argument("--source", choices=["demo", "cinc", "wfdb", "synthetic"], default="demo",
                   help="demo: the open-data slice shipped with WardWatch")
    r.add_argument("--input", help="a CinC 2019 CSV(.gz) or a WFDB record path (default: the shipped slice)")
    r.add_argument("--speed", type=float, default=60.0, help="record seconds per wall second (60: a minute a second)")
    r.add_argument("--patients", type=int, default=None, help="how many patients (synthetic: default 1000)")
    r.add_argument("--duration", type=float, default=None, help="seconds to run (default: until interrupted)")
    r.add_argument("--ward", default="ward-1")
    r.add_argument("--no-admit", action="store_true", help="do not admit the patients first")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    sent = eventloop.run(replay(settings, open_bus(settings), args.source, speed=args.speed, duration=args.duration,
                              patients=args.patients, input_path=args.input, ward=args.ward,
                              admit_patients=not args.no_admit))
    print(f"{sent} readings accepted")
    return 0
