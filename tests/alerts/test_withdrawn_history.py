"""A reading its sender withdrew (HL7 OBX-11 D/W, FHIR entered-in-error) is gone from the history:
the history of a store holding the readings and their withdrawals is the history of a store that
never held those readings, unwindowed and averaged into windows alike, and the other vital signs
of the same moments stay."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from alerts.history import patient_history, read_vitals, to_csv, to_fhir_bundle
from wardwatch.embedded_store import EmbeddedStore
from wardwatch.lineprotocol import retraction_line, vitals_line

SPAN = 60_000

# Heart rates at most once a second (as a monitor sends them), anywhere in the second, so that
# windows hold several readings and withdrawals fall in windows next to each other.
readings = st.lists(
    st.tuples(st.integers(0, SPAN // 1000 - 1), st.integers(0, 999),
              st.floats(40, 180, allow_nan=False).map(lambda v: round(v, 2)), st.booleans()),
    min_size=1, max_size=60, unique_by=lambda r: r[0]).map(lambda rs: [(s * 1000 + ms, v, c) for s, ms, v, c in rs])


def store_of(points, withdrawn=(), held=None) -> EmbeddedStore:
    """Heart rate (clean when the filters passed it) and SpO2 at the same times; ``withdrawn``: the
    heart-rate readings at these times withdrawn afterwards; ``held``: the heart-rate readings stored
    (all of them by default)."""
    store = EmbeddedStore()
    store.write_lines_sync([vitals_line("p1", "heart_rate", v, "mon-1", v if clean else None, None, t)
                            for t, v, clean in (points if held is None else held)]
                           + [vitals_line("p1", "spo2", 95.0, "mon-1", 95.0, None, t) for t, _, _ in points])
    if withdrawn:
        store.write_lines_sync([retraction_line("p1", "heart_rate", "HL7 OBX-11 W", t) for t in withdrawn])
    return store


def shown(s: dict, approx: bool = False) -> dict:
    """The series with a point to draw (a metric whose readings in range were all withdrawn has none)."""
    return {m: {k: [[t, pytest.approx(v) if approx else v] for t, v in pts] for k, pts in kinds.items()}
            for m, kinds in s.items() if kinds["raw"] or kinds["clean"]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=readings, data=st.data(), every=st.sampled_from([None, 1_000, 7_000, 20_000, SPAN]),
       start=st.integers(0, SPAN // 2), stop=st.integers(SPAN // 2 + 1, SPAN + 5_000))
def test_the_history_is_that_of_a_store_that_never_held_the_withdrawn_readings(points, data, every, start, stop):
    times = [t for t, _, _ in points]
    withdrawn = data.draw(st.sets(st.sampled_from(times)))
    with_withdrawals = store_of(points, withdrawn)
    never_held = store_of(points, held=[p for p in points if p[0] not in withdrawn])
    got = asyncio.run(read_vitals(with_withdrawals, "p1", start, stop, every))
    want = asyncio.run(read_vitals(never_held, "p1", start, stop, every))
    assert shown(got) == shown(want, approx=True)


async def test_the_history_lists_each_withdrawal_and_its_exports_leave_the_reading_out():
    store = store_of([(1_000, 71.0, True), (2_000, 140.0, True), (3_000, 73.0, True)], withdrawn=[2_000])
    hist = await patient_history(store, "p1", 0, SPAN)
    assert hist["vitals"]["heart_rate"] == [[1_000, 71.0], [3_000, 73.0]]
    assert hist["clean"]["heart_rate"] == [[1_000, 71.0], [3_000, 73.0]]
    assert hist["vitals"]["spo2"] == [[1_000, 95.0], [2_000, 95.0], [3_000, 95.0]]  # the other vital of that moment stays
    assert hist["withdrawn"] == {"heart_rate": [[2_000, "HL7 OBX-11 W"]]}
    assert "140" not in to_csv(hist)
    values = [e["resource"]["valueQuantity"]["value"] for e in to_fhir_bundle(hist)["entry"]]
    assert 140.0 not in values and 71.0 in values
    # Averaged into one window, the withdrawn value is not in the mean either.
    windowed = await patient_history(store, "p1", 0, SPAN, every_ms=SPAN)
    assert windowed["vitals"]["heart_rate"] == [[SPAN, pytest.approx(72.0)]]
