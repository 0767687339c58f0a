"""The README's Layout section and docs/architecture.md describe the tree as it is.

Every package at the top of the checkout is named in the Layout section, and every file or folder
either document names (a `path/like/this.py` or `folder/`) exists, so a move that forgets the docs
fails here rather than misleading a newcomer.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH_RE = re.compile(r"([A-Za-z_][\w.-]*/(?:[\w.-]+/)*[\w.-]*)")


def layout_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Layout", 1)[1].split("\n## ", 1)[0]


def named_paths(text: str) -> set[str]:
    paths = set()
    for quoted in re.findall(r"`([^`]+)`", text) + re.findall(r"\(([\w./-]+)\)", text):
        for m in PATH_RE.finditer(quoted):
            p = m.group(1)
            if "/" in p and not p.startswith(("http", "../")):
                paths.add(p)
    for m in re.finditer(r"\b((?:wardwatch|ingest|detectors|alerts|app|benchmarks|devservices|docs|tests)/[\w./-]*[\w/])", text):
        paths.add(m.group(1))
    return paths


def resolve(p: str) -> bool:
    if (ROOT / p).exists():
        return True
    # "alarms/" or "formats/" inside a package's own bullet: look one level down.
    return any((ROOT / pkg / p).exists() for pkg in ("wardwatch", "ingest", "detectors", "alerts", "app"))


def test_every_top_level_package_is_in_the_layout_section():
    packages = sorted(d.name for d in ROOT.iterdir() if (d / "__init__.py").exists() and d.name != "tests")
    missing = [p for p in packages if f"`{p}/`" not in layout_section()]
    assert packages and not missing, f"packages not described in README's Layout: {missing}"


def test_every_path_the_layout_docs_name_exists():
    docs = {"README.md#Layout": layout_section(), "docs/architecture.md": (ROOT / "docs/architecture.md").read_text()}
    missing = {where: sorted(p for p in named_paths(text) if not resolve(p)) for where, text in docs.items()}
    assert not any(missing.values()), missing
    assert len(named_paths(docs["docs/architecture.md"])) >= 8  # the check has something to check


def test_every_module_a_layout_bullet_names_is_in_its_package():
    """A bullet "- `detectors/`: ... `filters.py` ..." names modules of that package."""
    missing, seen = [], 0
    for bullet in re.split(r"\n- ", layout_section()):
        head = re.match(r"`(\w+)/`", bullet)
        if not head:
            continue
        for name in re.findall(r"`([\w]+\.py)`", bullet):
            seen += 1
            if not list((ROOT / head.group(1)).rglob(name)):
                missing.append(f"{head.group(1)}/**/{name}")
    assert seen >= 5 and not missing, missing


def test_the_check_finds_a_missing_path():
    assert not resolve("detectors/no_such_module.py")
    assert "ingest/mllp.py" in named_paths("the listener (`ingest/mllp.py`) acks")
