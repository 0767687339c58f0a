"""Run the whole service in one process on replayed real patients (``make demo``)."""

from __future__ import annotations

import argparse
import os
import shutil

from wardwatch import eventloop
from wardwatch.settings import get_settings

from app.demo import run_demo


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until stopped)")
    p.add_argument("--host", default=None, help="default: WARDWATCH_ALERTS_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: WARDWATCH_ALERTS_PORT (8765)")
    p.add_argument("--keep", action="store_true", help="keep the demo's data from an earlier run")


def run(args: argparse.Namespace) -> int:
    base = get_settings()
    backend = base.backend if "WARDWATCH_BACKEND" in os.environ else "embedded"
    data_dir = base.data_dir / "demo"
    if not args.keep and backend == "embedded":
        shutil.rmtree(data_dir, ignore_errors=True)  # the in-process bus starts empty: so does the rest
    settings = base.model_copy(update={"backend": backend, "data_dir": data_dir, "stale_after_s": 30.0})
    eventloop.run(run_demo(settings, args.duration, args.host or settings.alerts_host, args.port or settings.alerts_port))
    return 0
