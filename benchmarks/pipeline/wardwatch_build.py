"""The WardWatch build of the pipeline benchmark: ``--workers`` detector processes (``wardwatch
detect``, one consumer group; with ``--processes P`` each is started as ``detect --processes P``);
the alert service and the probe are :mod:`.feed_probe`'s, as for every peer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devservices import die_with_parent, free_port


def start_detectors(env: dict, workdir: Path, workers: int, processes: int | None) -> dict[str, subprocess.Popen]:
    procs = {}
    extra = ["--processes", str(processes)] if processes else []
    for i in range(workers):
        procs[f"detect-{i}"] = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "--log-level", "WARNING", "detect", "--metrics-port", str(free_port()),
             *extra],
            env=env, stdout=open(workdir / f"detect-{i}.log", "wb"), stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent)
    return procs
