"""Admit patients, assign devices, discharge (``wardwatch patients``)."""

from __future__ import annotations

import argparse
import asyncio

from wardwatch.bus import open_bus
from wardwatch.registry import Registry
from wardwatch.settings import get_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("admit")
    a.add_argument("patient")
    a.add_argument("--ward", required=True)
    a.add_argument("--bed")
    a.add_argument("--device", action="append", default=[])
    d = sub.add_parser("assign")
    d.add_argument("device")
    d.add_argument("patient")
    x = sub.add_parser("discharge")
    x.add_argument("patient")
    sub.add_parser("list")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    registry = Registry(settings.registry_path, open_bus(settings) if settings.backend == "kafka" else None)
    if args.action == "list":
        for rec in registry.all():
            print(rec.model_dump_json())
        return 0
    action = {"admit": lambda: registry.admit(args.patient, args.ward, args.bed, args.device),
              "assign": lambda: registry.assign(args.device, args.patient),
              "discharge": lambda: registry.discharge(args.patient)}[args.action]
    try:
        print(asyncio.run(action()).model_dump_json())
    except KeyError as exc:
        print(f"error: {exc.args[0]}")
        return 1
    return 0
