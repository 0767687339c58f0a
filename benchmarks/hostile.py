"""Hostile bodies and clients, for ``wardwatch bench ingest --hostile`` and the security tests (loopback only)."""

from __future__ import annotations

import asyncio
import time

import orjson

ORU = ("MSH|^~\\&|MONITOR-7|WARD7|WARDWATCH|HOSP|20261124101500+0000||ORU^R01^ORU_R01|MSG0001|P|2.6\r"
       "PID|||p1^^^HOSP^MR\r"
       "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|96|262688^MDC_DIM_PERCENT^MDC|||||R|||20261124101500+0000||||mon-1\r")


def valid_reading_body(n: int = 10, patient: str = "p1") -> bytes:
    now = int(time.time() * 1000)
    return orjson.dumps({"readings": [{"patient": patient, "device": "mon-1", "metric": "heart_rate", "value": 60 + i % 40,
                                       "unit": "/min", "ts": now - 1000 - i} for i in range(n)]})


def hostile_bodies() -> dict[str, tuple[str, bytes]]:
    """name -> (path, body); each is refused as a whole, before it is parsed."""
    obx = ORU.split("\r")[2]
    return {
        "hl7_40000_segments": ("/v1/hl7v2", (ORU + "\r".join([obx] * 40_000)).encode()),
        "hl7_1mb_repetitions": ("/v1/hl7v2", ORU.replace("|96|", "|" + "~" * (1 << 20) + "|").encode()),
        "fhir_bundle_600000_entries": ("/v1/fhir", orjson.dumps({"resourceType": "Bundle", "entry": [{}] * 600_000})),
        "json_11mb": ("/v1/readings", b"[" + b'{"a":1},' * 1_400_000 + b"{}]"),
    }


async def slow_loris(port: int, seconds: float, delay: float = 0.2) -> float:
    """Send request headers one byte at a time; returns how long until the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 10_000
    t0 = time.perf_counter()
    try:
        for b in head:
            if time.perf_counter() - t0 > seconds:
                break
            writer.write(bytes([b]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), delay) == b"":
                    break
            except asyncio.TimeoutError:
                pass
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.perf_counter() - t0
