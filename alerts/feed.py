"""The live feed: who is connected, what each may see, and coalesced fan-out.

Frames, not events, are the cost at a thousand clients (docs/baselines.md), so events are
gathered per *scope* (the set of wards and patients a client watches) and sent as one frame to
every client of that scope as soon as something is pending, but no sooner after the last frame
than ``FLUSH_DUTY`` times what that flush took (between ``FLUSH_MS`` and ``FLUSH_MAX_MS``). A quiet
ward's alarm goes out at once; a busy feed is coalesced, the more so the more a flush costs: its
cost is a write per socket per frame (the syscall was a third of the service's CPU at 1,000
clients, profiled), so flushing takes at most 1/FLUSH_DUTY of the loop, and on a loaded machine
frames grow instead of queueing up. A fixed 50 ms tick made every event wait 25 ms on average. A client
whose socket cannot keep up (its write buffer over ``SLOW_BYTES``) is skipped and told to resync:
it asks again with the last seq it saw and gets exactly what it missed from the event log. Memory
per client is therefore bounded by the socket's buffer, never by how far behind it is.

Bytes, next: 500 events/s to 1,000 clients is 200 MB/s of JSON, which the loopback alone spends
most of a core on (profiled). Frames are therefore compressed (permessage-deflate, which browsers
speak) *once* for all clients: with ``server_no_context_takeover`` every message is compressed on
its own, so a frame broadcast to a thousand sockets has one compressed form, computed for the
first socket and reused for the rest (``SharedDeflate``). Per-socket compression with context
takeover would cost a deflate per client per frame, which is what made fan-out CPU-bound before.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

import orjson
from websockets import broadcast
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.frames import CONT, CTRL_OPCODES, TEXT, Frame
from websockets.protocol import OPEN

from wardwatch.auth import Principal
from wardwatch.models import UNASSIGNED, VitalsSnapshot

from .guards import Rates

FLUSH_MS = 10  # the least time between two frames to a client
# The most, however long a flush took, and the share of the loop flushing may take (1/FLUSH_DUTY):
# 50 ms and 2 gave lower latency than 100 ms and 4 in alternating runs of `wardwatch bench alerts`
# (docs/benchmarks.md), for more frames to each client.
FLUSH_MAX_MS = 50
FLUSH_DUTY = 2
SLOW_BYTES = 1 << 20


@dataclass(eq=False)
class Client:
    ws: object
    principal: Principal
    wards: set[str] | None = None  # None = every ward
    patients: set[str] = field(default_factory=set)
    needs_resync: bool = False
    rates: Rates = field(default_factory=Rates)

    @property
    def scope_key(self) -> tuple:
        # The token's wards too: clients of one scope get the same frames, and what a patient's events
        # show depends on them (below).
        return (None if self.wards is None else tuple(sorted(self.wards)), tuple(sorted(self.patients)),
                self.principal.wards)

    def sees(self, ward: str, patient: str) -> bool:
        # A patient asked for by id is seen only while on the token's wards: moved elsewhere, no more.
        return self.wards is None or ward in self.wards or (
            patient in self.patients and (not self.principal.wards or ward in self.principal.wards))


@dataclass
class Scope:
    clients: set[Client] = field(default_factory=set)
    events: list[dict] = field(default_factory=list)
    vitals: dict[str, dict] = field(default_factory=dict)


class Feed:
    def __init__(self, timed: Callable[[float], None] = lambda seconds: None) -> None:
        self.timed = timed  # told how long each fan-out held the loop
        self.scopes: dict[tuple, Scope] = {}
        self.vitals: dict[str, dict] = {}  # patient -> latest snapshot (as JSON-ready dict)
        self.frames_sent = 0
        self._pending = asyncio.Event()  # something waits to be flushed

    # ---------------------------------------------------------------- membership

    def add(self, client: Client) -> None:
        self.scopes.setdefault(client.scope_key, Scope()).clients.add(client)

    def remove(self, client: Client) -> None:
        scope = self.scopes.get(client.scope_key)
        if scope:
            scope.clients.discard(client)
            if not scope.clients:
                del self.scopes[client.scope_key]

    def clients(self) -> list[Client]:
        return [c for s in self.scopes.values() for c in s.clients]

    # ---------------------------------------------------------------- input

    def publish_event(self, event: dict, ward: str, everyone: bool = False) -> None:
        patient = event["alert"]["patient"]
        for scope in self.scopes.values():
            any_client = next(iter(scope.clients), None)
            if any_client and (everyone or any_client.sees(ward, patient)):
                scope.events.append(event)
        self._pending.set()

    def publish_vitals(self, snap: VitalsSnapshot, ward: str) -> None:
        doc = snap.model_dump()
        doc["ward"] = ward
        self.vitals[snap.patient] = doc
        for scope in self.scopes.values():
            any_client = next(iter(scope.clients), None)
            if any_client and any_client.sees(ward, snap.patient):
                scope.vitals[snap.patient] = doc
        self._pending.set()

    def vitals_for(self, client: Client, ward_of) -> list[dict]:
        return [v for p, v in self.vitals.items() if client.sees(ward_of(p) or UNASSIGNED, p)]

    # ---------------------------------------------------------------- output

    def flush(self) -> None:
        """One frame per scope with everything pending; slow clients are skipped and marked for resync."""
        for scope in self.scopes.values():
            if not scope.events and not scope.vitals:
                continue
            frame = orjson.dumps({"type": "batch", "sent": time.time() * 1000, "events": scope.events,
                                  "vitals": list(scope.vitals.values())})
            scope.events, scope.vitals = [], {}
            ready = []
            for c in scope.clients:
                transport = getattr(c.ws, "transport", None)
                if transport is not None and transport.get_write_buffer_size() > SLOW_BYTES:
                    c.needs_resync = True
                elif c.needs_resync:
                    c.needs_resync = False
                    _send_now(c, {"type": "resync"})
                else:
                    ready.append(c)
            if ready:
                t0 = time.perf_counter()
                self.frames_sent += fan_out([c.ws for c in ready], frame)
                self.timed(time.perf_counter() - t0)

    async def run(self, stop: asyncio.Event) -> None:
        last, gap = 0.0, FLUSH_MS / 1000
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._pending.wait(), 1.0)
            except asyncio.TimeoutError:
                continue
            wait = gap - (time.monotonic() - last)
            if wait > 0:
                await asyncio.sleep(wait)  # what arrives meanwhile goes in the same frame
            self._pending.clear()
            last = time.monotonic()
            self.flush()
            gap = min(FLUSH_MAX_MS / 1000, max(FLUSH_MS / 1000, FLUSH_DUTY * (time.monotonic() - last)))


class SharedDeflate(PerMessageDeflate):
    """permessage-deflate whose output for a message is shared by every socket it is broadcast to.

    ``broadcast`` hands the same bytes object to each connection; without context takeover the
    compressed form depends only on those bytes and the window size, so it is computed once."""

    _last: tuple[object, int, Frame] | None = None  # (data, window bits, encoded frame), class-wide

    def encode(self, frame: Frame) -> Frame:
        if frame.opcode in CTRL_OPCODES or frame.opcode == CONT or not frame.fin:
            return super().encode(frame)
        last = SharedDeflate._last
        if last is not None and last[0] is frame.data and last[1] == self.local_max_window_bits:
            return last[2]
        encoded = super().encode(frame)
        SharedDeflate._last = (frame.data, self.local_max_window_bits, encoded)
        return encoded


class SharedDeflateFactory(ServerPerMessageDeflateFactory):
    """Negotiates permessage-deflate with ``server_no_context_takeover`` and hands out SharedDeflate."""

    def __init__(self) -> None:
        super().__init__(server_no_context_takeover=True, compress_settings={"memLevel": 8})

    def process_request_params(self, params, accepted_extensions):
        response, ext = super().process_request_params(params, accepted_extensions)
        assert ext.local_no_context_takeover, "shared compression needs server_no_context_takeover"
        return response, SharedDeflate(ext.remote_no_context_takeover, ext.local_no_context_takeover,
                                       ext.remote_max_window_bits, ext.local_max_window_bits, ext.compress_settings)


def fan_out(sockets: list, text: bytes) -> int:
    """Send one text frame to many sockets, encoded (compressed, framed) once per kind of socket.

    Server frames are not masked, so every socket that negotiated the same compression gets the
    very same bytes: they are built once and written to each transport, with no per-socket work but
    the write. Sockets that are not plainly open (closing, mid-fragment) or not ours (tests' fakes)
    go through ``websockets.broadcast``, which skips or handles them. Returns the frames written."""
    wire: dict[tuple, bytes] = {}
    others = []
    sent = 0
    for ws in sockets:
        protocol, transport = getattr(ws, "protocol", None), getattr(ws, "transport", None)
        if (protocol is None or transport is None or protocol.state is not OPEN or ws.send_in_progress is not None
                or protocol.expect_continuation_frame or transport.is_closing()):
            others.append(ws)
            continue
        key = protocol.__dict__.get("_wire_key")
        if key is None:  # fixed by the handshake: worked out once per socket, not once per frame
            key = protocol._wire_key = tuple((type(e).__name__, getattr(e, "local_max_window_bits", None))
                                             for e in protocol.extensions)
        data = wire.get(key)
        if data is None:
            data = wire[key] = Frame(TEXT, text).serialize(mask=False, extensions=protocol.extensions)
        transport.write(data)
        sent += 1
    if others:
        broadcast(others, text, text=True)
        sent += len(others)
    return sent


def _send_now(client: Client, message: dict) -> None:
    broadcast([client.ws], orjson.dumps(message).decode())
