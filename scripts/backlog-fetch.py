"""How long a reading that arrives after a flushed backlog waits for the detector engine
(docs/detectors.md, "A flushed backlog"): a worker on the in-process bus with a ward of 1,000
patients fetches 20,000 readings of one patient (a gateway's flush), then each of the ward's
patients sends one reading a second into the backlog's computing; printed is how long after it was sent each patient's reading was
computed (the slowest of them), and how long the whole backlog took.
Usage: .venv/bin/python scripts/backlog-fetch.py"""
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detectors.worker import DetectorWorker  # noqa: E402
from wardwatch import eventloop  # noqa: E402
from wardwatch.bus import MemoryBus  # noqa: E402
from wardwatch.models import Reading  # noqa: E402
from wardwatch.settings import Settings  # noqa: E402
from wardwatch.store import StoreHealth  # noqa: E402

WARD, FLUSH = 1000, 20_000


class NullStore:
    health = StoreHealth()

    async def write_lines(self, lines, **_) -> None:
        return None


def encode(readings: list[Reading]) -> list[tuple[bytes, bytes]]:
    return [(r.patient.encode(), r.model_dump_json().encode()) for r in readings]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(backend="embedded", readings_partitions=1, stale_after_s=10**9, data_dir=tmp)
        bus = MemoryBus(settings)
        await bus.ensure_topics()
        producer = bus.producer()
        now = int(time.time() * 1000)
        ward = [Reading(patient=f"w{i}", device=f"d{i}", metric="spo2", value=97, unit="%", ts=now - 5000)
                for i in range(WARD)]
        worker = DetectorWorker(settings, bus=bus, store=NullStore())
        await worker.start()
        await producer.send_many(bus.topics.readings, encode(ward))
        while await worker.step(timeout_ms=0):
            pass
        computed: dict[str, float] = {}  # patient -> when its first reading was computed
        backlog_rows = [0, 0.0]  # the backlog's readings computed, and when the last of them was
        process = worker.engine.process

        def spy(cols, *args, **kw):
            out = process(cols, *args, **kw)
            t = time.perf_counter()
            for p in set(cols.patient.tolist()) - computed.keys():
                computed[p] = t
            b1 = int((cols.patient == "b1").sum())
            if b1:
                backlog_rows[0] += b1
                backlog_rows[1] = t
            return out

        worker.engine.process = spy
        flush = [Reading(patient="b1", device="gw-buffer", metric="heart_rate", value=80 + i % 7, unit="/min",
                         ts=now - 3_600_000 * 6 + 1000 * i) for i in range(FLUSH)]
        stop = asyncio.Event()

        async def run() -> None:  # the worker's loop, as `wardwatch detect` runs it
            while not stop.is_set():
                await worker.step(timeout_ms=20)

        runner = asyncio.create_task(run())
        await producer.send_many(bus.topics.readings, encode(flush))
        t_flush = time.perf_counter()
        await asyncio.sleep(1.0)  # the worker is inside the backlog now
        computed.clear()
        t_sent = time.perf_counter()
        await producer.send_many(bus.topics.readings, encode(
            [Reading(patient=f"w{i}", device=f"d{i}", metric="spo2", value=96, unit="%", ts=now) for i in range(WARD)]))
        while len(computed) < WARD + 1 or backlog_rows[0] < FLUSH:
            await asyncio.sleep(0.01)
        stop.set()
        await runner
        waits = np.array([computed[f"w{i}"] - t_sent for i in range(WARD)])
        print(f"{FLUSH:,} readings of one patient flushed, then one reading from each of {WARD:,} other patients: "
              f"the slowest of theirs computed {waits.max():.2f} s after it was sent (median {np.median(waits):.2f} s); "
              f"the backlog's {backlog_rows[0]:,} readings computed {backlog_rows[1] - t_flush:.2f} s after its fetch")
        await worker.close()


if __name__ == "__main__":
    eventloop.run(main())
