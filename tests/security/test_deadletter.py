"""Every rejected input of a set of hostile payloads is on the dead-letter topic, with its source,
reason, original payload (capped) and the SHA-256 of what was received."""

from __future__ import annotations

import hashlib

import httpx
import orjson
import pytest

from wardwatch.codec import MAX_PAYLOAD_KEEP
from wardwatch.models import RejectedInput

from .conftest import drain
from benchmarks.hostile import hostile_bodies, valid_reading_body

pytestmark = pytest.mark.integration


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


# (path, body, reason, kept whole): a rejection of the whole body keeps the body; one of an item
# (a reading, a FHIR resource, an HL7 message or segment) keeps that item.
CASES = [
    ("/v1/readings", b'{"readings": [', "malformed_json", True),
    ("/v1/readings", deep(5000), "malformed_json", True),  # deeper than the JSON parser's limit
    ("/v1/readings", b'[{"patient":"p1","device":"mon-1","metric":"heart_rate","unit":"/min","ts":1,"value":' + deep(400) + b"}]",
     "schema", True),  # parses, but too deep to serialise back: the body is kept instead
    ("/v1/readings", b'{"readings": "many"}', "schema", True),
    ("/v1/readings", b'[{"patient": 5, "device": ["x"], "metric": "heart_rate", "value": "72", "unit": "/min", "ts": "now"}]',
     "schema", False),
    ("/v1/readings", b'[1, null, "x"]', "schema", False),
    ("/v1/hl7v2", b"PID|||p1^^^HOSP^MR\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||96|", "schema", True),  # no MSH
    ("/v1/hl7v2", b"\x00\xff garbage", "schema", False),
    ("/v1/fhir", b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}', "unsupported", False),
    ("/v1/fhir", orjson.dumps({"resourceType": "Observation", "subject": {"reference": "Patient/p 1"}}), "schema", True),
] + [(path, body, "too_large", True) for path, body in hostile_bodies().values()]


async def test_every_rejection_is_on_the_dead_letter_topic_with_payload_and_hash(ingest):
    rejected = accepted = 0
    expected: list[tuple[str, str, bytes]] = []  # (source, reason, body) of whole-body rejections
    async with httpx.AsyncClient(base_url=ingest.url, headers=ingest.auth, timeout=60) as http:
        for path, body, reason, whole in CASES:
            r = await http.post(path, content=body)
            assert r.status_code in (207, 422), (path, body[:80], r.status_code)
            res = r.json()
            assert res["accepted"] + res["rejected"] == res["received"] == len(res["items"]) > 0
            assert reason in {i["reason"] for i in res["items"]}, (body[:80], res["items"][:3])
            rejected += res["rejected"]
            accepted += res["accepted"]
            if whole:
                expected.append(("http:" + path.rsplit("/", 1)[-1].replace("readings", "json"), reason, body))
        r = await http.post("/v1/readings", content=valid_reading_body(3))  # and the good still pass
        assert r.json()["accepted"] == 3
    dead = [RejectedInput.model_validate_json(m.value) for m in await drain(ingest.bus, ingest.bus.topics.deadletter, rejected + 1)]
    assert len(dead) == rejected and accepted == 0
    for d in dead:
        assert d.payload and d.payload_sha256 and d.payload_bytes >= len(d.payload.encode()) // 3
        assert len(d.payload.encode("utf-8", "surrogatepass")) <= 3 * MAX_PAYLOAD_KEEP  # capped (U+FFFD may triple bytes)
    by_hash = {d.payload_sha256: d for d in dead}
    for source, reason, body in expected:
        if reason == "too_large" and len(body) > 10 << 20:
            continue  # cut off at the limit: hashed as far as it was read
        d = by_hash.get(hashlib.sha256(body).hexdigest())
        assert d is not None and d.source == source, (source, reason, body[:80])
        assert d.payload_bytes == len(body) and body[:MAX_PAYLOAD_KEEP].decode("utf-8", "replace") == d.payload
