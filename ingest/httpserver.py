"""uvicorn for the ingest, with the connection limits uvicorn lacks: a deadline for request headers.

uvicorn times out idle kept-alive connections but not a client that trickles its headers in byte by
byte (slow loris): this h11 protocol closes a connection whose headers are not in within the
deadline, on its first request and on every following one.
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from wardwatch.settings import Settings


class HeaderDeadlineProtocol(H11Protocol):
    header_timeout_s = 10.0  # set per server by :func:`config`
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the headers are in (or the connection failed)
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def config(app, settings: Settings, host: str, port: int) -> uvicorn.Config:
    protocol = type("IngestH11Protocol", (HeaderDeadlineProtocol,), {"header_timeout_s": settings.ingest_header_timeout_s})
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, http=protocol,
                          timeout_keep_alive=settings.ingest_keepalive_s,
                          h11_max_incomplete_event_size=settings.ingest_max_header_bytes)
