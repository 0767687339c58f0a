"""The services run on uvloop where it is installed, on asyncio's loop when asked, and refuse to
start when uvloop is required but missing (rather than run slower without saying so)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from wardwatch import eventloop


async def _which() -> str:
    return eventloop.name()


def test_auto_runs_on_uvloop_when_it_is_installed():
    pytest.importorskip("uvloop")
    assert eventloop.run(_which(), "auto") == "uvloop"


def test_asyncio_runs_on_the_standard_loop():
    assert eventloop.run(_which(), "asyncio") == "asyncio"


def test_required_uvloop_missing_fails_and_auto_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        eventloop.run(_which(), "uvloop")
    assert eventloop.run(_which(), "auto") == "asyncio"


def test_the_choice_comes_from_the_environment(monkeypatch):
    pytest.importorskip("uvloop")
    code = "from wardwatch import eventloop, settings; import asyncio\n" \
           "async def m(): return eventloop.name()\nprint(eventloop.run(m()))"
    for choice, expected in (("asyncio", "asyncio"), ("uvloop", "uvloop"), ("auto", "uvloop")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**_env(), "WARDWATCH_EVENT_LOOP": choice}).stdout.strip()
        assert out == expected, choice
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**_env(), "WARDWATCH_EVENT_LOOP": "tokio"})
    assert bad.returncode != 0 and "event_loop" in bad.stderr


def test_a_coroutine_result_and_its_exception_come_back():
    async def boom() -> None:
        await asyncio.sleep(0)
        raise KeyError("x")

    with pytest.raises(KeyError):
        eventloop.run(boom(), "auto")


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("WARDWATCH_")}
