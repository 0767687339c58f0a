"""The WardWatch build of the pipeline benchmark: ``--workers`` detector processes (``wardwatch
detect``, one consumer group; with ``--processes P`` each is started as ``detect --processes P``);
the alert service and the probe are :mod:`.feed_probe`'s, as for every peer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devservices import die_with_parent, free_port


def start_detectors(env: dict, workdir: Path, workers: int, processes: int) -> tuple[dict[str, subprocess.Popen], list[int]]:
    """The detector processes, and the health ports of every worker among them (``processes`` each)."""
    procs, ports = {}, []
    for i in range(workers):
        port = free_port()
        ports += [port + k for k in range(processes)]  # `detect --processes N` gives worker k port + k
        procs[f"detect-{i}"] = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "--log-level", "WARNING", "detect", "--metrics-port", str(port),
             "--processes", str(processes)],
            env=env, stdout=open(workdir / f"detect-{i}.log", "wb"), stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent)
    return procs, ports


def worker_lag(ports: list[int]) -> int | None:
    """Records behind the end of the readings topic, as the workers count them (their position, not
    their last commit), summed; None if a worker does not answer."""
    import httpx

    try:
        return sum(int(httpx.get(f"http://127.0.0.1:{p}/healthz", timeout=2).json()["lag"]) for p in ports)
    except (httpx.HTTPError, ValueError, KeyError):
        return None
