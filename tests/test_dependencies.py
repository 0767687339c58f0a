"""Every third-party import of the project's packages is declared in pyproject.toml, in the right place.

The AST of every module of wardwatch, ingest, detectors, alerts, app, devservices and benchmarks is
walked; every import, at module level or inside a function, whose top-level name is neither the
standard library nor one of those packages must belong to a distribution declared for that module:

- **runtime** (``[project] dependencies``): what every module may import. The service, the demo
  (including its WFDB replay, ``wfdb``), ``wardwatch score`` and the dev servers need nothing else.
- **bench** (the ``bench`` extra, plus runtime): modules of ``benchmarks/``.
- **an optional feature's extra**: only the modules listed in ``OPTIONAL`` below, with their extra.

The rule for optional features: a listed module may import its extra, at module level or inside a
function. Importing an optional dependency inside a function, or inside ``try/except ImportError``,
does *not* exempt an unlisted module: a guarded import of something undeclared is still undeclared.
And the default install must import without any extra: no module outside ``OPTIONAL`` may *need*
an extra at import time, that is import an optional dependency at module level, or at module level
a module that does (transitively). So an optional feature's entry point (``wardwatch train``)
imports the extra inside the functions that use it, checks first, and says what to install.

Import names are mapped to distributions with the installed environment's metadata
(``importlib.metadata.packages_distributions``), so the test runs where ``make`` installed
``.[train,test,bench]``. ``tests/`` may import anything declared anywhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest

from tests.importgraph import ROOT, first_party_targets, imports, modules, third_party

# Modules of optional features, with the extra each may import (see the module docstring).
OPTIONAL = {
    "detectors.training": "train",
    "detectors.evaluate": "train",
    "detectors.early_warning.metrics": "train",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    """place (runtime, or an extra's name) -> normalised distribution names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    places = {"runtime": project["dependencies"], **project.get("optional-dependencies", {})}
    return {place: {_norm(re.match(r"[A-Za-z0-9._-]+", req).group()) for req in reqs}
            for place, reqs in places.items()}


DECLARED = _declared()
DISTRIBUTIONS = {name: {_norm(d) for d in dists} for name, dists in packages_distributions().items()}
MODULES = modules()


def _places(module: str) -> list[str]:
    return ["runtime", *(["bench"] if module.split(".")[0] == "benchmarks" else []),
            *([OPTIONAL[module]] if module in OPTIONAL else [])]


def test_every_third_party_import_is_declared_for_its_module():
    problems = []
    for module, path in MODULES.items():
        places = _places(module)
        allowed = set().union(*(DECLARED[p] for p in places))
        for imp in imports(path):
            top = third_party(imp)
            if top is None:
                continue
            dists = DISTRIBUTIONS.get(top, set())
            if not dists:
                problems.append(f"{imp.where}: imports {top}, which no installed distribution provides")
            elif not allowed & dists:
                where = sorted(p for p, names in DECLARED.items() if names & dists) or ["nowhere"]
                problems.append(f"{imp.where}: imports {top} ({', '.join(sorted(dists))}), declared in "
                                f"{', '.join(where)}; {module} may import {' + '.join(places)}")
    assert not problems, "\n".join(problems)


def _needs_an_extra_at_import() -> dict[str, str]:
    """module -> why, for every module that cannot be imported without an optional extra."""
    runtime = DECLARED["runtime"]
    needs: dict[str, str] = {}
    for module, path in MODULES.items():
        if module.split(".")[0] == "benchmarks":
            continue  # the bench extra is the benchmarks' own runtime
        for imp in imports(path):
            top = third_party(imp)
            if imp.module_level and top and DISTRIBUTIONS.get(top) and not DISTRIBUTIONS[top] & runtime:
                needs[module] = f"{imp.where}: imports {top}"
    changed = True
    while changed:
        changed = False
        for module, path in MODULES.items():
            if module in needs or module.split(".")[0] == "benchmarks":
                continue
            for imp in imports(path):
                hit = imp.module_level and (first_party_targets(imp, MODULES) & set(needs))
                if hit:
                    needs[module] = f"{imp.where}: imports {sorted(hit)[0]}"
                    changed = True
                    break
    return needs


def test_nothing_outside_the_optional_modules_needs_an_extra_to_be_imported():
    problems = [f"{why} (so {module} needs an extra to be imported)"
                for module, why in _needs_an_extra_at_import().items() if module not in OPTIONAL]
    assert not problems, "\n".join(problems)


def test_tests_import_only_declared_packages():
    everything = set().union(*DECLARED.values())
    problems = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for imp in imports(path):
            top = third_party(imp)
            if top is not None and not DISTRIBUTIONS.get(top, set()) & everything:
                problems.append(f"{imp.where}: imports {top}, declared nowhere")
    assert not problems, "\n".join(problems)


def test_the_service_demo_and_commands_import_without_any_extra():
    """A real import, with every optional and bench package made unimportable."""
    blocked = ["sklearn", "matplotlib", "quixstreams", "psutil", "httpx"]
    code = ("import sys\n"
            f"for name in {blocked!r}: sys.modules[name] = None\n"
            "import app.cli, app.demo, devservices, alerts.service, ingest.server, detectors.worker\n"
            "for c in app.cli.COMMANDS:\n"
            "    if c != 'bench': __import__('app.commands.' + c)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_train_and_evaluate_say_what_to_install_without_scikit_learn(command, monkeypatch, capsys):
    import importlib.util

    from app.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert "scikit-learn" in err and "wardwatch[train]" in err
