"""Which event loop a WardWatch process runs on.

Every service is a single event loop whose hot paths are socket writes and reads: the alert
service writes each frame to a thousand websockets, the worker reads fetch responses and writes
produce requests, the ingest endpoint parses requests. uvloop (libuv, written for exactly this)
does the transport work in C; asyncio's own loop does it in Python. ``WARDWATCH_EVENT_LOOP``
chooses: ``auto`` (uvloop where it is installed, which it is with WardWatch on Linux and macOS),
``uvloop`` (required: fail if missing) or ``asyncio`` (the standard loop, for debugging or a
platform without uvloop). The figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Coroutine, Literal, TypeVar

T = TypeVar("T")
Choice = Literal["auto", "uvloop", "asyncio"]
log = logging.getLogger(__name__)


def loop_factory(choice: Choice = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``asyncio.Runner``: uvloop's, or None for asyncio's own."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError("WARDWATCH_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: Choice | None = None) -> T:
    """``asyncio.run`` on the chosen loop (by default the settings' ``event_loop``)."""
    if choice is None:
        from wardwatch.settings import get_settings

        choice = get_settings().event_loop
    try:
        factory = loop_factory(choice)
    except RuntimeError:
        main.close()  # never started: close it, so it is not reported as never awaited
        raise
    log.info("event loop: %s", "uvloop" if factory else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: what the running (or given) loop is."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
