"""The live feed: who is connected, what each may see, and coalesced fan-out.

Frames, not events, are the cost at a thousand clients (docs/baselines.md), so events are
gathered per *scope* (the set of wards and patients a client watches) and sent every
``FLUSH_MS`` as one frame with ``websockets.broadcast`` to every client of that scope. A client
whose socket cannot keep up (its write buffer over ``SLOW_BYTES``) is skipped and told to resync:
it asks again with the last seq it saw and gets exactly what it missed from the event log. Memory
per client is therefore bounded by the socket's buffer, never by how far behind it is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson
from websockets import broadcast

from wardwatch.auth import Principal
from wardwatch.models import VitalsSnapshot

from .guards import Rates

FLUSH_MS = 50
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
        return (None if self.wards is None else tuple(sorted(self.wards)), tuple(sorted(self.patients)))

    def sees(self, ward: str, patient: str) -> bool:
        return self.wards is None or ward in self.wards or patient in self.patients


@dataclass
class Scope:
    clients: set[Client] = field(default_factory=set)
    events: list[dict] = field(default_factory=list)
    vitals: dict[str, dict] = field(default_factory=dict)


class Feed:
    def __init__(self) -> None:
        self.scopes: dict[tuple, Scope] = {}
        self.vitals: dict[str, dict] = {}  # patient -> latest snapshot (as JSON-ready dict)
        self.frames_sent = 0

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

    def publish_vitals(self, snap: VitalsSnapshot, ward: str) -> None:
        doc = snap.model_dump()
        doc["ward"] = ward
        self.vitals[snap.patient] = doc
        for scope in self.scopes.values():
            any_client = next(iter(scope.clients), None)
            if any_client and any_client.sees(ward, snap.patient):
                scope.vitals[snap.patient] = doc

    def vitals_for(self, client: Client, ward_of) -> list[dict]:
        return [v for p, v in self.vitals.items() if client.sees(ward_of(p) or "unassigned", p)]

    # ---------------------------------------------------------------- output

    def flush(self) -> None:
        """One frame per scope with everything pending; slow clients are skipped and marked for resync."""
        for scope in self.scopes.values():
            if not scope.events and not scope.vitals:
                continue
            frame = orjson.dumps({"type": "batch", "events": scope.events, "vitals": list(scope.vitals.values())}).decode()
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
                broadcast([c.ws for c in ready], frame)
                self.frames_sent += len(ready)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            self.flush()
            await asyncio.sleep(max(0.0, FLUSH_MS / 1000 - (time.monotonic() - t0)))


def _send_now(client: Client, message: dict) -> None:
    broadcast([client.ws], orjson.dumps(message).decode())
