"""The embedded store answers like InfluxDB: same line protocol in, same downsampled series out."""

import pytest

from wardwatch.embedded_store import EmbeddedStore, parse_line
from wardwatch.lineprotocol import line, vitals_line


def test_line_protocol_round_trips_escapes_and_types():
    ln = line("alerts", {"patient": "p,1 x", "kind": "technical"},
              {"message": 'sensor "off", check probe', "level": 3, "ok": True, "value": 1.5}, 1234)
    m, tags, fields, ts = parse_line(ln)
    assert (m, ts) == ("alerts", 1234)
    assert tags == {"patient": "p,1 x", "kind": "technical"}
    assert fields == {"message": 'sensor "off", check probe', "level": 3, "ok": True, "value": 1.5}


async def test_writes_are_idempotent_and_windows_match_influx_semantics(tmp_path):
    store = EmbeddedStore(tmp_path / "s.sqlite3")
    base = 1_700_000_040_000
    lines = [vitals_line("p9", "heart_rate", float(60 + i % 60), "mon", None, None, base + 1000 * i)
             for i in range(600)]
    await store.write_lines(lines)
    await store.write_lines(lines[:100])  # a resend overwrites
    assert store.count("vitals") == 600
    per_minute = await store.query_series("vitals", "p9", base, base + 600_000, every_ms=60_000, fields=["heart_rate"])
    assert len(per_minute) == 10
    assert all(r["value"] == pytest.approx(89.5) for r in per_minute)
    assert per_minute[0]["time"] == base + 60_000 and per_minute[0]["field"] == "heart_rate"
    other = await store.query_series("vitals", "p8", base, base + 600_000)
    assert other == []
