"""The system tools the dev servers need, installed from Debian's packages when they are missing.

Kafka runs on Java 17+ (``java``; ``javac`` compiles the small ACL runner) and its jars come from
Maven Central through ``mvn``; InfluxDB 1.8 is built from source with ``go``. A tool already on
PATH is used as it is (``/usr/local/go/bin/go`` counts as on PATH: that is where Go's own
installer puts it); only a missing one is installed, with ``apt-get`` (through ``sudo`` when not
root), the way ``scripts/ensure-test-packages.sh`` installs Chromium and nginx. Where that is impossible the
error says what to install by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from .process import log

# Debian's package for each tool. default-jdk-headless is the release's own JDK (17 on bookworm,
# 21 on trixie: Kafka 4 needs 17+); a JDK, not a JRE, because the ACL runner is compiled with javac.
APT_PACKAGES = {
    "java": "default-jdk-headless",
    "javac": "default-jdk-headless",
    "mvn": "maven",
    "go": "golang-go",
}

# Where Go's own installer (go.dev/dl) puts go, often not on a non-login shell's PATH.
GO_FALLBACKS = ("/usr/local/go/bin/go",)

MIN_JAVA = 17
# `go install pkg@version` (how influxd is built) needs Go 1.16+; InfluxDB 1.8.10's go.mod says go 1.13.
# Debian bookworm's golang-go is 1.19 (a build of influxd 1.8.10 with it was checked by hand).
MIN_GO = (1, 16)

Runner = Callable[..., object]


def which(tool: str) -> str | None:
    """The tool's path on PATH, or for go also its usual place outside PATH; None when absent."""
    found = shutil.which(tool)
    if found or tool != "go":
        return found
    return next((p for p in GO_FALLBACKS if Path(p).exists()), None)


def apt_install(packages: Iterable[str], run: Runner = subprocess.run) -> None:
    """``apt-get update`` then ``apt-get install -y PACKAGES``, with sudo when not root."""
    packages = sorted(set(packages))
    hint = f"install them by hand: apt-get install {' '.join(packages)}"
    if not shutil.which("apt-get"):
        raise RuntimeError(f"{', '.join(packages)} missing and this machine has no apt-get; {hint}")
    if os.geteuid() == 0:
        sudo: list[str] = []
    elif shutil.which("sudo"):
        sudo = ["sudo"]
    else:
        raise RuntimeError(f"{', '.join(packages)} missing; not root and no sudo to install them; {hint}")
    log(f"installing Debian's {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
        run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env)
    except (subprocess.CalledProcessError, OSError) as e:
        raise RuntimeError(f"apt-get could not install {' '.join(packages)} ({e}); {hint}") from e


def ensure(*tools: str, run: Runner = subprocess.run) -> dict[str, str]:
    """The path of each tool, installing the missing ones (all in one apt-get call) first."""
    missing = [t for t in tools if not which(t)]
    if missing:
        apt_install((APT_PACKAGES[t] for t in missing), run=run)
    paths = {t: which(t) for t in tools}
    still = [t for t, p in paths.items() if not p]
    if still:
        raise RuntimeError(f"{', '.join(still)} still not on PATH after apt-get install "
                           f"{' '.join(sorted({APT_PACKAGES[t] for t in still}))}")
    return paths  # type: ignore[return-value]


def version(argv: list[str], pattern: str) -> tuple[int, ...] | None:
    """The first version ``pattern`` finds in what ``argv`` prints (stdout or stderr)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, out.stdout + out.stderr)
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def java() -> str:
    """Path of a Java 17+ ``java`` (with ``javac`` beside it on PATH)."""
    path = ensure("java", "javac")["java"]
    v = version([path, "-version"], r'version "(?:1\.)?(\d+)')
    if v is not None and v[0] < MIN_JAVA:
        raise RuntimeError(f"Kafka needs Java {MIN_JAVA}+, and {path} is Java {v[0]}: "
                           f"apt-get install {APT_PACKAGES['java']} (or openjdk-{MIN_JAVA}-jdk-headless)")
    return path


def maven() -> str:
    java()
    return ensure("mvn")["mvn"]


def go() -> str:
    """Path of a Go new enough to build influxd with ``go install pkg@version``."""
    path = ensure("go")["go"]
    v = version([path, "version"], r"go(\d+)\.(\d+)")
    if v is not None and v < MIN_GO:
        raise RuntimeError(f"building InfluxDB needs Go {'.'.join(map(str, MIN_GO))}+, and {path} is Go "
                           f"{'.'.join(map(str, v))}: install a newer Go (go.dev/dl puts it in /usr/local/go)")
    return path


def main() -> int:
    """Print each tool the dev servers use and where it is, installing what is missing."""
    for name, find in (("java", java), ("mvn", maven), ("go", go)):
        print(f"{name}\t{find()}")
    return 0
