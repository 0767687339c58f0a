"""The ``wardwatch`` subcommands, one module each (see :mod:`app.cli`)."""

from __future__ import annotations

import importlib.util
import sys


def missing_extra(command: str, extra: str, modules: dict[str, str]) -> bool:
    """True, after telling the user how to install it, when an optional extra's package is absent.

    ``modules`` maps each import name the command needs to its distribution, e.g.
    ``{"sklearn": "scikit-learn"}``."""
    absent = [dist for name, dist in modules.items() if importlib.util.find_spec(name) is None]
    if not absent:
        return False
    print(f"wardwatch {command} needs {', '.join(absent)}, which is not installed: it comes with the "
          f"'{extra}' extra, pip install 'wardwatch[{extra}]' (or, in a checkout, pip install -e '.[{extra}]')",
          file=sys.stderr)
    return True
