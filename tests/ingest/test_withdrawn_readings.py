"""A monitor withdraws a result it sent (HL7 OBX-11 W over MLLP, after the IHE PCD-01 example in
test_mllp.py) and a PHD gateway marks an Observation entered-in-error (FHIR R4 status, as in the
PHD IG's examples): both are acknowledged as understood, go through the real Kafka to a detector
worker, which stores the withdrawal in the real InfluxDB, and the history read from InfluxDB no
longer holds those readings, in its raw points, its window means and its exports, while the
other vital signs of the same moments stay."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from alerts.history import patient_history, to_csv
from detectors.worker import DetectorWorker
from ingest.mllp import frame
from wardwatch.store import InfluxStore

from .test_mllp import hl7_now, ihe_pcd01, read_acks

pytestmark = pytest.mark.integration


def withdrawn_spo2(message: str, control: str) -> str:
    """The same message resent with its SpO2 result marked W (posted in error) and its HR left out."""
    lines = [s for s in message.split("\r") if s and "MDC_ECG_HEART_RATE" not in s]
    text = "\r".join(lines) + "\r"
    return text.replace("|M1|", f"|{control}|").replace("|||||R|", "|||||W|")


def fhir_hr(patient: str, device: str, value: float, when_ms: int, status: str) -> dict:
    when = dt.datetime.fromtimestamp(when_ms / 1000, dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return {"resourceType": "Observation", "status": status, "effectiveDateTime": when,
            "subject": {"reference": f"Patient/{patient}"}, "device": {"reference": f"Device/{device}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}


async def stored(store: InfluxStore, patient: str, start: int, stop: int, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await store.query_series("retractions", patient, start, stop):
            return True
        await asyncio.sleep(0.5)
    return False


async def test_withdrawn_results_leave_the_history_end_to_end(gateway, mllp):
    when = hl7_now()
    t = int(dt.datetime.strptime(when, "%Y%m%d%H%M%S%z").timestamp() * 1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", mllp.port)
    first = ihe_pcd01("M1", "p1", spo2="81", when=when)  # a desaturation the monitor then says was wrong
    writer.write(frame(first))
    assert [a["msa"] for a in await read_acks(reader, 1)] == ["AA"]
    # The next second's SpO2, kept; then the withdrawal of the first.
    later = hl7_now(1)
    writer.write(frame(ihe_pcd01("M2", "p1", spo2="97", when=later)) + frame(withdrawn_spo2(first, "M3")))
    acks = await read_acks(reader, 2)
    assert [(a["msa"], a["control"], a["err"]) for a in acks] == [("AA", "M2", []), ("AA", "M3", [])]
    writer.close()

    hr = [fhir_hr("p2", "mon-2", v, t + 1000 * i, "final") for i, v in enumerate((70.0, 190.0, 72.0))]
    r = await gateway.client.post("/v1/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": o, "request": {"method": "POST", "url": "Observation"}} for o in hr]})
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    # POSTed as FHIR's own create: understood (201 and an OperationOutcome without errors).
    r = await gateway.client.post("/v1/fhir/Observation", json=fhir_hr("p2", "mon-2", 190.0, t + 1000, "entered-in-error"),
                                  headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 201 and not [i for i in r.json()["issue"] if i["severity"] == "error"], r.text

    store = InfluxStore(gateway.settings)
    worker = DetectorWorker(gateway.settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        assert await stored(store, "p1", t - 60_000, t + 60_000) and await stored(store, "p2", t - 60_000, t + 60_000)
    finally:
        stop.set()
        await task

    one = await patient_history(store, "p1", t - 60_000, t + 60_000)
    later_ms = t + 1000
    assert one["vitals"]["spo2"] == [[later_ms, 97.0]]  # the withdrawn 81 % is gone
    assert [p[0] for p in one["vitals"]["heart_rate"]] == [t, later_ms]  # the HR of that moment stays
    assert one["withdrawn"] == {"spo2": [[t, "HL7 OBX-11 W"]]}
    two = await patient_history(store, "p2", t - 60_000, t + 60_000)
    assert two["vitals"]["heart_rate"] == [[t, 70.0], [t + 2000, 72.0]]
    assert "190" not in to_csv(two)
    # In a window that held it, the mean is of the readings that stand (InfluxDB's own aggregateWindow).
    windowed = await patient_history(store, "p2", t - 3_600_000, t + 60_000, every_ms=3_660_000)
    assert [v for _, v in windowed["vitals"]["heart_rate"]] == [pytest.approx(71.0)]
    store.close()
