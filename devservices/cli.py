"""``python -m devservices install|up|tools``: install the dev servers, or run them until interrupted.

    python -m devservices tools          # Java, Maven and Go: found, or installed from Debian's packages
    python -m devservices install        # fetch and build Kafka and influxd, cached
    python -m devservices up             # run both until Ctrl-C, print their addresses
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

from . import tools
from .install import influxd_binary, kafka_libs
from .kafka import PRINCIPALS
from .stack import start_services


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devservices", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("tools", help="find Java, Maven and Go, installing the missing ones from Debian's packages")
    sub.add_parser("install", help="fetch Kafka jars and build influxd into the cache")
    up = sub.add_parser("up", help="start Kafka and InfluxDB and run until interrupted")
    up.add_argument("--env-file", help="write the WARDWATCH_* settings for these servers to this file (Kafka admin) "
                                       "and to FILE.<service> for each service principal")
    args = ap.parse_args(argv)
    if args.cmd == "tools":
        return tools.main()
    if args.cmd == "install":
        print(tools.java())  # the broker runs on it even when its jars are cached
        print(kafka_libs())
        print(influxd_binary())
        return 0
    services = start_services()
    env = services.env()
    if args.env_file:
        # FILE as admin (topics, tools), FILE.<service> for each service's own principal.
        for principal in PRINCIPALS:
            path = Path(args.env_file if principal == "admin" else f"{args.env_file}.{principal}")
            path.write_text("".join(f"{k}={v}\n" for k, v in services.env(principal).items()))
            path.chmod(0o600)  # it holds a password
    print(json.dumps(env), flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop and services.kafka.alive() and services.influx.alive():
            time.sleep(0.5)
    finally:
        services.stop()
    return 0
