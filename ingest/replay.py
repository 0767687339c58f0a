"""Replay readings as a device gateway would: a tick of every patient's current values per second."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from wardwatch.bus import Bus
from wardwatch.models import PatientRecord
from wardwatch.registry import Registry, RegistryView
from wardwatch.settings import Settings

from .gateway import GatewayClient
from .sources import Replayer, Track, cinc, wfdb_numerics
from .sources.synthetic import SyntheticWard

log = logging.getLogger("wardwatch.gateway")
DATA = Path(__file__).resolve().parents[1] / "wardwatch" / "data"


def demo_tracks(limit: int | None = None) -> list[Track]:
    """The slice of open data shipped with WardWatch: two MIMIC-II monitor records (a minute every
    3 s) and CinC 2019 patients (a charted hour every 6 s), so a ward's night passes in minutes."""
    tracks = [wfdb_numerics.track(DATA / "s25047-2704-05-04-10-44n", "mimic-s25047"),
              wfdb_numerics.track(DATA / "s00001-2896-10-10-00-31n", "mimic-s00001")]
    for t in tracks:
        t.speed = 20.0
    for t in cinc.tracks(DATA / "cinc2019_demo.csv.gz"):
        t.speed = 600.0
        tracks.append(t)
    return tracks[:limit] if limit else tracks


async def admit(settings: Settings, bus: Bus, patients: list[str], devices: list[str], ward: str) -> RegistryView:
    registry = Registry(settings.registry_path, bus)
    await registry.admit_many([PatientRecord(patient=p, ward=ward, bed=str(i + 1), devices=[d])
                               for i, (p, d) in enumerate(zip(patients, devices))])
    return registry.view()


async def replay(settings: Settings, bus: Bus, source: str, *, speed: float, duration: float | None,
                 patients: int | None = None, input_path: str | None = None, ward: str = "ward-1",
                 admit_patients: bool = True, stop: asyncio.Event | None = None) -> int:
    """Play a source until ``duration`` seconds passed or ``stop`` is set; returns readings accepted."""
    if source == "synthetic":
        gen = SyntheticWard(patients or 1000)
        pids, devs = gen.patients.tolist(), gen.devices.tolist()
        tick = lambda elapsed, now: gen.tick(now)  # noqa: E731 - one expression per source
    else:
        if source == "cinc":
            tracks = cinc.tracks(input_path, limit=patients) if input_path else demo_tracks()[2:][:patients]
        elif source == "wfdb":
            paths = [input_path] if input_path else [str(DATA / "s00001-2896-10-10-00-31n")]
            tracks = [wfdb_numerics.track(p, f"mimic-{Path(p).name.split('-')[0]}") for p in paths]
        else:
            tracks = demo_tracks(patients)
        player = Replayer(tracks, speed=speed)
        pids, devs = [t.patient for t in tracks], [t.device for t in tracks]
        tick = player.at
    view = await admit(settings, bus, pids, devs, ward) if admit_patients else Registry(settings.registry_path).view()
    client = GatewayClient(settings, bus, view, source=f"gateway:{source}")
    await client.start()
    start = time.monotonic()
    n = 0
    try:
        while (duration is None or time.monotonic() - start < duration) and not (stop and stop.is_set()):
            # The record's time from the tick's number, not from the clock: a tick that wakes late
            # (a loaded machine) still plays its own sample, so a replay is the same on every machine.
            await client.send(tick(float(n), int(time.time() * 1000)))
            n += 1
            await asyncio.sleep(max(0.0, start + n - time.monotonic()))
    finally:
        await client.stop()
    log.info("replayed %d ticks: %d readings accepted, %d rejected", n, client.sent, client.rejected)
    return client.sent
