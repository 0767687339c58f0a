"""The ``wardwatch`` command. Each subcommand is a module of :mod:`app.commands`, imported only when used.

A command module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, str] = {
    "demo": "run the whole service in one process on replayed real patients",
    "token": "create, list and revoke access tokens",
    "services": "install and run Kafka and InfluxDB as local processes (development and tests)",
    "patients": "admit, assign devices, discharge",
    "gateway": "replay real or synthetic readings as a device gateway",
    "ingest": "run the HTTP ingest endpoint",
    "detect": "run a detector worker in the consumer group",
    "train": "train the early-warning models from data",
    "score": "score a CinC 2019 file offline through the worker's detectors",
    "evaluate": "compare WardWatch's risk and alarms with NEWS2 on CinC data",
    "alerts": "run the alert feed, nurse page and history API",
    "bench": "benchmarks: ingest, detectors, alerts, pipeline",
}


def setup_logging(level: str = "INFO") -> None:
    # Log lines carry counts, ids of infrastructure and errors: never patient identifiers or values.
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("aiokafka", "kafka", "urllib3", "httpx", "websockets.server", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="wardwatch", description="WardWatch: continuous vital-sign monitoring")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_ in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    # Find the command first, then let only its module build its parser.
    known, _ = parser.parse_known_args(argv)
    if not known.command:
        parser.print_help()
        return 2
    module_name, help_ = f"app.commands.{known.command}", COMMANDS[known.command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"wardwatch {known.command}: not available in this build ({module_name})", file=sys.stderr)
            return 2
        raise
    full = argparse.ArgumentParser(prog="wardwatch", description="WardWatch: continuous vital-sign monitoring")
    full.add_argument("--log-level", default="INFO")
    fsub = full.add_subparsers(dest="command", required=True)
    cmd = fsub.add_parser(known.command, help=help_, description=(module.__doc__ or help_).strip().splitlines()[0])
    module.add_arguments(cmd)
    args = full.parse_args(argv)
    setup_logging(args.log_level)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
