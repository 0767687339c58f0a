"""The batch line builders equal the straightforward one-point-at-a-time lines they replace."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from wardwatch.lineprotocol import (METRIC_NAMES, VitalsLines, line, score_line, score_lines, scores_head,
                                    vitals_line)

# What line protocol can carry (a backslash or line break in a key, a line break in a string is refused).
key_text = st.text(st.characters(blacklist_characters="\\\n\r", blacklist_categories=("Cs",)), max_size=12)
string_text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=12)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 97.0, 0.93]))
reading = st.tuples(st.sampled_from(["p1", "p 2", "p,3=x"]) | key_text, st.integers(0, len(METRIC_NAMES) - 1),
                    floats, floats, floats, st.sampled_from(["dev", 'a "dev"']) | string_text,
                    st.sampled_from([1000, 2000]) | st.integers(0, 2**53))


def one_point_per_patient_time(readings) -> list[str]:
    """The reference: gather each (patient, time)'s fields reading by reading (a later repeat of a
    metric replaces the earlier one), then one :func:`line` per point, metrics in catalogue order."""
    points: dict[tuple, dict[int, tuple]] = {}
    for p, m, v, c, q, d, t in readings:
        points.setdefault((p, t), {})[m] = (v, c, q, d)
    lines = []
    for (p, t), by_metric in points.items():
        fields: dict = {}
        for m in sorted(by_metric):
            v, c, q, d = by_metric[m]
            name = METRIC_NAMES[m]
            fields |= {name: v, f"{name}_clean": c, f"{name}_q": q, f"{name}_dev": d}
        lines.append(line("vitals", {"patient": p}, fields, t))
    return lines


def build(readings, builder=None, rows: dict | None = None) -> list[str]:
    """The batch builder on ``readings``; with ``rows`` (patient -> row, kept across batches, as the
    engine's patient table) grouped by those stable keys."""
    p, m, v, c, q, d, t = (list(x) for x in zip(*readings)) if readings else ([],) * 7
    keys = None if rows is None else np.array([rows.setdefault(x, len(rows)) for x in p], np.int64)
    return (builder or VitalsLines()).build(np.array(p, object), np.array(m, np.int64), np.array(v, float),
                                            np.array(c, float), np.array(q, float), np.array(d, object),
                                            np.array(t, np.int64), keys=keys)


@settings(max_examples=300, deadline=None)
@given(st.lists(reading, max_size=40))
def test_the_batch_builder_equals_one_line_per_point_built_reading_by_reading(readings):
    got = build(readings)
    assert sorted(got) == sorted(one_point_per_patient_time(readings))
    assert len(got) == len({(r[0], r[6]) for r in readings})  # one point per patient-time


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(reading, max_size=15), max_size=4))
def test_cached_tags_and_devices_never_leak_between_batches(batches):
    builder, by_key, rows = VitalsLines(), VitalsLines(), {}
    for readings in batches:
        want = sorted(one_point_per_patient_time(readings))
        assert sorted(build(readings, builder)) == want
        assert sorted(build(readings, by_key, rows)) == want


def test_not_finite_values_are_left_out_and_a_reading_keeps_its_device():
    nan = float("nan")
    assert vitals_line("p1", "spo2", nan, "ox", float("inf"), nan, 5) == 'vitals,patient=p1 spo2_dev="ox" 5'
    assert vitals_line("p1", "spo2", 97.0, "ox", 97.0, 0.5, 5) == \
        'vitals,patient=p1 spo2=97.0,spo2_clean=97.0,spo2_q=0.5,spo2_dev="ox" 5'


@pytest.mark.parametrize("patient,device", [("p\\1", "ox"), ("p\n1", "ox"), ("p1", "o\nx")])
def test_what_line_protocol_cannot_carry_is_refused_loudly(patient, device):
    with pytest.raises(ValueError):
        build([(patient, 0, 1.0, 1.0, 1.0, device, 1000)])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(key_text, floats, st.booleans(), string_text, st.integers(0, 2**53)), max_size=20),
       st.sampled_from(["news2", "risk", "iforest", "trend"]))
def test_score_lines_equal_score_line_row_by_row(rows, name):
    p, v, part, why, t = (list(x) for x in zip(*rows)) if rows else ([],) * 5
    want = [score_line(*r[:1], name, *r[1:]) for r in rows if np.isfinite(r[1])]
    assert score_lines([scores_head(x) for x in p], name, np.array(v, float), np.array(part, bool), why,
                       np.array(t, np.int64)) == want


# The common batch (every raw value finite, no device quality), where each distinct field text is
# formatted once: few values, a clean one mostly the raw one, now and then another, missing or not
# finite; -0.0 beside 0.0.
few = st.sampled_from([0.0, -0.0, 97.0, 0.93, 1e-7, 1e22, 36.6])
common = st.tuples(st.sampled_from(["p1", "p 2", "p,3=x"]), st.integers(0, len(METRIC_NAMES) - 1), few,
                   st.sampled_from(["same", "nan", "inf", "other"]), st.just(float("nan")),
                   st.sampled_from(["dev", "d2"]) | st.sampled_from(['a "dev"', "b\\c"]),
                   st.sampled_from([1000, 2000, 3000]))


@settings(max_examples=300, deadline=None)
@given(st.lists(common, max_size=40), few)
def test_the_common_batch_equals_one_line_per_point_built_reading_by_reading(rows, other):
    clean = {"nan": float("nan"), "inf": float("inf"), "other": other}
    readings = [(p, m, v, v if c == "same" else clean[c], q, d, t) for p, m, v, c, q, d, t in rows]
    got = build(readings)
    assert sorted(got) == sorted(one_point_per_patient_time(readings))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["p1", "p 2", "p,3=x", "", "a\\b", "a\nb", "a\rb"]) | key_text, max_size=12),
       st.sampled_from(["vitals", "scores"]))
def test_heads_of_many_patients_equal_their_series_keys_or_refuse_alike(patients, measurement):
    from wardwatch.lineprotocol import patient_heads, series_key

    try:
        want = [series_key(measurement, {"patient": p}) for p in patients]
    except ValueError:
        with pytest.raises(ValueError):
            patient_heads(measurement, patients)
        return
    assert patient_heads(measurement, patients) == want
