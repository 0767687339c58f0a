"""wardwatch.codec: the mapping validator and the column validator are one set of rules, and the
readings-topic encoding round-trips through decode_readings."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from wardwatch.codec import (RULES, Invalid, Limits, check_columns, decode_readings, encode_readings,
                             reading_from_mapping)
from wardwatch.columns import ReadingColumns
from wardwatch.identifiers import REASON as BAD_IDENTIFIER, is_identifier

NOW = 1_764_000_000_000
LIMITS = Limits(max_future_ms=120_000, max_age_ms=7 * 86_400_000)
ADMITTED = ["p1", "p2", "bed-3:a"]


class FakeRegistry:
    """A registry view: some patients admitted, no device assigned."""

    def __init__(self, admitted) -> None:
        self.admitted = set(admitted)

    def is_admitted(self, patient: str) -> bool:
        return patient in self.admitted

    def patient_for_device(self, device: str) -> str | None:
        return None


VALID_ID = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
BAD_ID = st.sampled_from(["", " ", "p1\n", "p\"1", "a\\b", "p 1", "p" * 65, "-p", "пациент", "p1\x00"]) \
    | st.text(max_size=70).filter(lambda s: not is_identifier(s))
ANY_ID = VALID_ID | BAD_ID


def sometimes(draw, good, bad):
    """Mostly a good field, one time in four a bad one: readings with one fault, several, or none."""
    return draw(bad if draw(st.integers(0, 3)) == 0 else good)


@st.composite
def a_reading(draw, ids=None, patients=None) -> dict:
    """A readings-topic mapping; ``ids`` / ``patients`` fix the strategy for the identifiers."""
    m = draw(st.integers(0, len(RULES.metrics) - 1))
    low, high = float(RULES.low[m]), float(RULES.high[m])
    value = sometimes(draw, st.floats(low, high) | st.sampled_from([low, high]),
                      st.sampled_from([math.nextafter(low, -math.inf), math.nextafter(high, math.inf), math.nan, math.inf,
                                       -math.inf]) | st.floats(high, high + 50, exclude_min=True)
                      | st.floats(allow_nan=True, allow_infinity=True))
    ts = sometimes(draw, st.integers(NOW - LIMITS.max_age_ms, NOW + LIMITS.max_future_ms),
                   st.sampled_from([NOW + LIMITS.max_future_ms + 1, NOW - LIMITS.max_age_ms - 1])
                   | st.integers(-(2**61), 2**61))
    q = sometimes(draw, st.none() | st.floats(0, 1), st.floats(1.01, 10) | st.floats(-10, -0.01))
    ident = lambda: draw(ids) if ids is not None else sometimes(draw, VALID_ID, BAD_ID)  # noqa: E731
    patient = draw(patients) if patients is not None else sometimes(draw, st.sampled_from(ADMITTED), ANY_ID)
    return {"id": ident(), "patient": patient, "device": ident(), "metric": RULES.names[m], "value": value,
            "unit": RULES.units[m], "ts": ts, "received": draw(st.integers(0, 2**61)),
            "quality": None if q is None else float(np.float32(q))}  # what the float32 column holds


def columns(readings: list[dict]) -> ReadingColumns:
    return ReadingColumns(np.array([r["id"] for r in readings], dtype=object),
                          np.array([r["patient"] for r in readings], dtype=object),
                          np.array([r["device"] for r in readings], dtype=object),
                          np.array([RULES.index[r["metric"]] for r in readings], dtype=np.int8),
                          np.array([r["value"] for r in readings], dtype=np.float64),
                          np.array([r["ts"] for r in readings], dtype=np.int64),
                          np.array([r["received"] for r in readings], dtype=np.int64),
                          np.array([np.nan if r["quality"] is None else r["quality"] for r in readings], dtype=np.float32))


def mapping_reason(d: dict, registry) -> str:
    try:
        reading_from_mapping(d, NOW, LIMITS, registry)
    except Invalid as exc:
        return exc.reason
    return ""


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_reading(), min_size=1, max_size=12), st.booleans())
def test_mapping_and_column_validators_agree_on_every_reading(readings, with_registry):
    registry = FakeRegistry(ADMITTED) if with_registry else None
    by_columns = check_columns(columns(readings), NOW, LIMITS, registry).tolist()
    assert [mapping_reason(d, registry) for d in readings] == by_columns
    # The consumer side's decoder (orjson, then the same column check) says the same of what JSON can carry.
    json_ok = [d for d in readings if math.isfinite(d["value"])]
    raw = [orjson.dumps(d) for d in json_ok]
    cols, rejected = decode_readings(raw, NOW, registry, limits=LIMITS)
    expected = {i: mapping_reason(d, registry) for i, d in enumerate(json_ok)}
    assert {r.index: r.reason for r in rejected} == {i: why for i, why in expected.items() if why}
    assert cols.id.tolist() == [d["id"] for i, d in enumerate(json_ok) if not expected[i]]


def test_one_reason_per_rule_in_the_one_order():
    good = {"id": "r1", "patient": "p1", "device": "mon-1", "metric": "spo2", "value": 97.0, "unit": "%", "ts": NOW - 1000,
            "received": 0, "quality": None}
    cases = [({}, ""), ({"quality": 1.5}, "schema"), ({"patient": "p 1", "value": 140.0}, BAD_IDENTIFIER),
             ({"value": 140.0, "ts": NOW + 3600_000}, "impossible_value"), ({"value": math.nan}, "impossible_value"),
             ({"ts": NOW + 3600_000, "patient": "stranger"}, "future_timestamp"), ({"ts": 0}, "too_old"),
             ({"patient": "stranger"}, "unknown_patient")]
    registry = FakeRegistry(ADMITTED)
    readings = [good | change for change, _ in cases]
    assert check_columns(columns(readings), NOW, LIMITS, registry).tolist() == [why for _, why in cases]
    assert [mapping_reason(d, registry) for d in readings] == [why for _, why in cases]


def assert_same_columns(a: ReadingColumns, b: ReadingColumns) -> None:
    for name in ("id", "patient", "device"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    for name in ("metric", "value", "ts", "received"):
        assert getattr(a, name).dtype == getattr(b, name).dtype and np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.quality, b.quality, equal_nan=True)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_reading(ids=VALID_ID, patients=VALID_ID), min_size=0, max_size=20))
def test_encode_then_decode_gives_back_every_accepted_reading_exactly(readings):
    cols = columns(readings)
    accepted = cols.take(check_columns(cols, NOW, LIMITS) == "")
    messages = encode_readings(accepted)
    assert [k for k, _ in messages] == [p.encode() for p in accepted.patient.tolist()]
    back, rejected = decode_readings([v for _, v in messages], NOW, limits=LIMITS)
    assert rejected == []
    assert_same_columns(back, accepted)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_reading(ids=VALID_ID, patients=VALID_ID), min_size=0, max_size=20))
def test_the_template_for_checked_rows_writes_the_same_json_as_orjson(readings):
    cols = columns(readings)
    accepted = cols.take(check_columns(cols, NOW, LIMITS) == "")
    fast, careful = encode_readings(accepted, NOW, checked=True), encode_readings(accepted, NOW)
    assert [k for k, _ in fast] == [k for k, _ in careful]
    assert [orjson.loads(v) for _, v in fast] == [orjson.loads(v) for _, v in careful]


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_reading(ids=ANY_ID, patients=ANY_ID), min_size=1, max_size=20))
def test_encoding_escapes_any_string_and_decode_refuses_what_breaks_the_identifier_rule(readings):
    """The identifier rule allows no character JSON must escape, so an id needing escapes is never
    accepted; the encoder still writes it as valid JSON, and the decoder rejects it for its id."""
    for r in readings:  # only the ids may be wrong here
        m = RULES.index[r["metric"]]
        r.update(value=float(RULES.low[m]), ts=NOW, quality=None)
    cols = columns(readings)
    messages = encode_readings(cols, received=NOW)
    for (key, value), r in zip(messages, readings):
        assert key == r["patient"].encode()
        assert orjson.loads(value) == {**{k: r[k] for k in ("id", "patient", "device", "metric", "value", "unit", "ts")},
                                       "received": NOW, "quality": None}
    back, rejected = decode_readings([v for _, v in messages], NOW, limits=LIMITS)
    good = [all(is_identifier(r[k]) for k in ("id", "patient", "device")) for r in readings]
    assert {r.index for r in rejected} == {i for i, g in enumerate(good) if not g}
    assert {r.reason for r in rejected} <= {BAD_IDENTIFIER}
    assert back.id.tolist() == [r["id"] for r, g in zip(readings, good) if g]


def test_decode_of_nothing_and_of_hostile_bytes():
    cols, rejected = decode_readings([], NOW)
    assert len(cols) == 0 and rejected == []
    cols, rejected = decode_readings([b"", b"{", b"[]", b'{"metric": []}', b'{"metric": "spo2"}'], NOW)
    assert len(cols) == 0
    assert [r.reason for r in rejected] == ["malformed_json", "malformed_json", "schema", "unknown_metric", "schema"]


@pytest.mark.parametrize("module", ["wardwatch.codec"])
def test_the_core_codec_imports_no_layer_above_the_core(module):
    import subprocess
    import sys

    code = (f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('ingest', 'detectors', 'alerts', 'app', 'benchmarks')]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@given(st.lists(ANY_ID | st.sampled_from(["a\nb", "a\n", "\n", "a\n\nb"]), max_size=8))
def test_the_batch_identifier_check_is_the_rule_on_every_value(values):
    from wardwatch.identifiers import all_identifiers

    assert all_identifiers(values) == all(map(is_identifier, values))
