"""The layers import downwards only, read from the source (every import, at module level or in a function).

- ``wardwatch`` (the core) imports none of the other packages;
- ``ingest``, ``detectors`` and ``alerts`` import only the core and themselves (not each other);
- ``devservices`` imports only the core;
- ``benchmarks`` may import everything but ``app`` (the CLI calls the benchmarks, not the reverse);
- ``app`` (CLI, demo, service start-up) may import everything.

"""

from __future__ import annotations

from pathlib import Path

from tests.importgraph import FIRST_PARTY, PACKAGES, ROOT, imports, modules

MAY_IMPORT = {
    "wardwatch": {"wardwatch"},
    "ingest": {"wardwatch", "ingest"},
    "detectors": {"wardwatch", "detectors"},
    "alerts": {"wardwatch", "alerts"},
    "devservices": {"wardwatch", "devservices"},
    "benchmarks": set(PACKAGES) - {"app"},
    "app": set(PACKAGES),
}

def _violations(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for module, path in modules(root=root).items():
        layer = module.split(".")[0]
        for imp in imports(path, root):
            top = imp.names[0].split(".")[0]
            if top in FIRST_PARTY and top != "tests" and top not in MAY_IMPORT[layer]:
                found.setdefault((module, top), []).append(f"{imp.where}: {imp.names[0]}")
    return found


VIOLATIONS = _violations()


def test_every_package_is_in_a_layer():
    assert set(MAY_IMPORT) == set(PACKAGES)


def test_layers_import_downwards_only():
    assert not VIOLATIONS, "\n".join(line for lines in VIOLATIONS.values() for line in lines)


def test_the_rule_catches_violations(tmp_path):
    """The check itself, on a made-up tree: lazy, relative-looking and `from PKG import mod` imports count."""
    for pkg, text in {
        "wardwatch": "def f():\n    from ingest.server import app\n",
        "ingest": "from detectors import engine\nfrom . import codec\n",
        "devservices": "import alerts.service\nfrom wardwatch import settings\n",
        "app": "import benchmarks, devservices, ingest\n",
    }.items():
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
        (tmp_path / pkg / "x.py").write_text(text)
    assert sorted(_violations(tmp_path)) == [("devservices.x", "alerts"), ("ingest.x", "detectors"),
                                             ("wardwatch.x", "ingest")]
