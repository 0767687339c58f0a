"""Identifiers and strings against line protocol, Flux and CSV, with the real Kafka and InfluxDB.

The property over arbitrary strings: either refused with its reason, or stored and read back
identically; never a 500, never another patient's data.
"""

from __future__ import annotations

import csv
import io
import time

import httpx
import orjson
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from alerts.history import csv_cell
from wardwatch.codec import decode_readings
from ingest.formats.hl7v2 import split_messages
from tests.ingest.test_formats import PCD01
from tests.ingest.test_fuzz import collect
from wardwatch.identifiers import REASON, is_identifier
from wardwatch.lineprotocol import line, vitals_line
from wardwatch.models import Reading, RejectedInput
from wardwatch.store import InfluxStore

from .conftest import drain

pytestmark = pytest.mark.integration

NASTY = ["${r.patient}", '" or true or "', "p1\n", "p1 ", "a,b=c", "p1\\", "\\${x}", "=cmd|' /C calc'!A0", "p1\" ) |> drop(",
         "-p1", "p" * 65, "", " ", "пациент", "p1\x00", "p1\r",
         # MLLP's framing bytes inside an id (found by the hypothesis run below: "uMGPwo8r\x1c" was
         # cut at the FS and its readings filed under "uMGPwo8r")
         "uMGPwo8r\x1c", "p1\x1cOBX", "p1\x0b", "p\x0b1"]


def id_like() -> st.SearchStrategy[str]:
    """Arbitrary text, and text near the rule (valid ids, ids with one stray character)."""
    valid = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
    return st.text(max_size=70) | valid | st.tuples(valid, st.text(min_size=1, max_size=3)).map("".join)


async def test_line_protocol_stores_arbitrary_strings_identically_or_refuses_them(settings, services):
    """Tag values and string fields through the real InfluxDB and back through Flux (escaped there too)."""
    store = InfluxStore(settings)
    strings = list(dict.fromkeys(collect(st.text(min_size=1, max_size=40), 150) + [s for s in NASTY if s]))
    written, refused = [], 0
    for i, s in enumerate(strings):
        try:
            written.append((s, line("probe", {"patient": "p1", "tag": s}, {"s": s}, 1_700_000_000_000 + i)))
        except ValueError:
            assert any(c in s for c in "\\\r\n")  # only what line protocol cannot carry is refused
            refused += 1
    await store.write_lines([ln for _, ln in written])
    for s, _ in written:
        rows = await store.query_series("probe", "p1", 1_600_000_000_000, 1_800_000_000_000, tags={"tag": s})
        assert [(r["tag"], r["value"]) for r in rows] == [(s, s)], repr(s)
    store.close()
    assert written and refused


async def test_history_refuses_bad_ids_with_400_and_never_leaks_other_patients(ward):
    store = InfluxStore(ward.settings)
    base = 1_700_000_040_000
    await store.write_lines([vitals_line(p, "heart_rate", 60.0 + i, "mon", None, None, base + 1000)
                             for i, p in enumerate(["p1", "p2"])])
    # Escaping alone already stops the injection (defence in depth behind the identifier rule).
    assert await store.query_series("vitals", "${r.patient}", base, base + 60_000) == []
    store.close()
    auth = {"Authorization": f"Bearer {ward.tokens['clinician']}"}
    ids = NASTY + ["p1", "p2"] + collect(id_like(), 150)
    async with httpx.AsyncClient(base_url=ward.http, headers=auth) as http:
        for pid in ids:
            for path in ("/api/history", "/api/history.csv"):
                r = await http.get(path, params={"patient": pid, "start": base, "stop": base + 60_000})
                assert r.status_code == (200 if is_identifier(pid) else 400), (repr(pid), r.status_code, r.text[:200])
            if is_identifier(pid):
                want = {"p1": [[base + 1000, 60.0]], "p2": [[base + 1000, 61.0]]}.get(pid)
                got = (await http.get("/api/history", params={"patient": pid, "start": base, "stop": base + 60_000})).json()
                assert got["vitals"].get("heart_rate") == want, repr(pid)
        for bad in ({"start": -5, "stop": 10}, {"start": 0, "stop": 10**20}, {"every": -1}, {"start": "x"}):
            r = await http.get("/api/history", params={"patient": "p1", "start": base, "stop": base + 60_000} | bad)
            assert r.status_code == 400, bad


async def test_csv_export_neutralises_formula_cells(ward):
    store = InfluxStore(ward.settings)
    base = 1_700_000_040_000
    await store.write_lines([line("alerts", {"patient": "p1", "kind": "physiological", "priority": "high",
                                             "condition": "+spo2_low", "event": "raised"},
                                  {"alert_id": "al-1", "message": '=HYPERLINK("http://x","y")'}, base + 1000)])
    store.close()
    async with httpx.AsyncClient(base_url=ward.http, headers={"Authorization": f"Bearer {ward.tokens['clinician']}"}) as http:
        text = (await http.get("/api/history.csv", params={"patient": "p1", "start": base, "stop": base + 60_000})).text
    row = [r for r in csv.DictReader(io.StringIO(text)) if r["kind"].startswith("alarm")][0]
    assert row["name"] == "'+spo2_low" and row["value"] == "'=HYPERLINK(\"http://x\",\"y\")"


@hsettings(max_examples=500, deadline=None)
@given(st.text(max_size=30))
def test_csv_cells_read_back_as_text_never_as_a_formula(s):
    buf = io.StringIO()
    csv.writer(buf).writerow([csv_cell(s)])
    (back,) = next(csv.reader(io.StringIO(buf.getvalue()))) or [""]
    assert not back.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert back in (s, "'" + s)


def _hl7(patient: str) -> bytes:
    ts = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - 5))
    msg = PCD01.replace("p1^^^HOSP", f"{patient}^^^HOSP").replace("20261124101500", ts)
    return "\r".join(seg for seg in split_messages(msg)[0].split("\r") if not seg.startswith("OBX|4")).encode()  # known codes only


def _fhir(patient: str) -> bytes:
    ts = "%sZ" % time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 5))
    return orjson.dumps({"resourceType": "Observation", "status": "final", "effectiveDateTime": ts,
                         "subject": {"reference": f"Patient/{patient}"}, "device": {"reference": "Device/mon-1"},
                         "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                         "valueQuantity": {"value": 72, "code": "/min"}})


def _json(patient: str) -> bytes:
    return orjson.dumps([{"patient": patient, "device": "mon-1", "metric": "heart_rate", "value": 72, "unit": "/min",
                          "ts": int(time.time() * 1000) - 1000}])


async def test_every_edge_applies_the_one_rule_and_accepted_ids_arrive_identically(ingest):
    """JSON, FHIR and HL7 over HTTP: a bad id is rejected as bad_identifier, a good one reaches the
    readings topic unchanged; then the consumer-side codec reads the topic with the same rule."""
    ids = list(dict.fromkeys(NASTY + collect(id_like(), 120)))
    accepted: list[str] = []
    async with httpx.AsyncClient(base_url=ingest.url, headers=ingest.auth, timeout=30) as http:
        for pid in ids:
            cases = [("/v1/readings", _json(pid)), ("/v1/fhir", _fhir(pid))]
            if not any(c in pid for c in "|^~&\\\r\n"):  # HL7 delimiters would make another message, not another id
                cases.append(("/v1/hl7v2", _hl7(pid)))
            for path, body in cases:
                r = await http.post(path, content=body)
                assert r.status_code in (200, 207, 422), (path, repr(pid), r.text[:200])
                res = r.json()
                assert res["accepted"] + res["rejected"] == res["received"] > 0
                if is_identifier(pid):
                    assert res["rejected"] == 0, (path, repr(pid), res)
                    accepted += [pid] * res["accepted"]
                else:  # a blank one may read as a missing patient (schema); anything else breaks the rule
                    reasons = {i["reason"] for i in res["items"]}
                    assert res["accepted"] == 0 and reasons and reasons <= ({REASON} if pid.strip() else {REASON, "schema"}), \
                        (path, repr(pid), res)
    messages = await drain(ingest.bus, ingest.bus.topics.readings, len(accepted))
    assert sorted(Reading.model_validate_json(m.value).patient for m in messages) == sorted(accepted)
    # The consumer side: the same rule for what a producer other than the ingest wrote.
    now = int(time.time() * 1000)
    raw = [orjson.dumps({"id": f"r{i}", "patient": pid, "device": "mon-1", "metric": "heart_rate", "value": 72,
                         "unit": "/min", "ts": now - 1000}) for i, pid in enumerate(ids)]
    cols, rejected = decode_readings(raw, now)
    assert sorted(cols.patient.tolist()) == sorted(p for p in ids if is_identifier(p))
    assert {r.reason for r in rejected} <= {REASON}
    assert all(RejectedInput.model_validate_json(r.model_dump_json()).payload_sha256 for r in rejected)
