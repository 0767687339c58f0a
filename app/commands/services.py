"""Install and run Kafka and InfluxDB as local processes (for machines without Docker)."""

from __future__ import annotations

import argparse

import devservices


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("install", help="fetch the Kafka jars and build influxd into the cache")
    up = sub.add_parser("up", help="start both and run until interrupted; prints the settings to use")
    up.add_argument("--env-file", help="write the settings to this file (Kafka admin) and FILE.<service> per principal")


def run(args: argparse.Namespace) -> int:
    argv = [args.action] + (["--env-file", args.env_file] if getattr(args, "env_file", None) else [])
    return devservices.main(argv)
