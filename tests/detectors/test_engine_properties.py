"""Properties of the engine on sequences of readings, as outside gateways send them: how a stream is
cut into batches, late and resent readings, silent devices."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from detectors.engine import DetectorEngine
from detectors.scores.news2 import News2Stage
from wardwatch.columns import ReadingColumns

from .helpers import columns

BASE = 1_700_000_000_000
HOUR = 3600_000
PANEL = ["resp_rate", "spo2", "sbp", "heart_rate", "temperature"]
VALUES = {"heart_rate": [0.0, 35.0, 60.0, 80.0, 135.0, 150.0], "spo2": [0.0, 80.0, 88.0, 92.0, 97.0],
          "resp_rate": [0.0, 5.0, 16.0, 26.0, 30.0], "sbp": [0.0, 80.0, 120.0, 230.0],
          "temperature": [34.0, 37.0, 39.5]}


def event_keys(events) -> list:
    return sorted((e.event_id, e.alert.message) for e in events)


def run_in_batches(rows, cuts, stages=lambda: [News2Stage()]) -> list:
    """Events of ``rows`` (patient, metric, value, ts) cut into batches before each index in ``cuts``."""
    engine = DetectorEngine(stages=stages())
    events = []
    bounds = [0, *cuts, len(rows)]
    for a, b in zip(bounds, bounds[1:]):
        if a < b:
            events += engine.process(columns(*zip(*rows[a:b]))).events
    return event_keys(events)


@st.composite
def streams(draw):
    """Readings of three patients, each patient's in time order (a distinct time per reading), the
    patients interleaved, one of them possibly hours behind the others (a gateway forwarding a buffer)."""
    steps = draw(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(PANEL), st.integers(0, 5),
                                    st.sampled_from([1000, 5000, 20_000, 600_000, 3 * HOUR])), min_size=1, max_size=60))
    t = {0: BASE, 1: BASE + draw(st.sampled_from([0, 1000, 5 * HOUR])), 2: BASE}
    rows = []
    for p, metric, i, dt in steps:
        t[p] += dt
        rows.append((f"p{p}", metric, VALUES[metric][i % len(VALUES[metric])], t[p]))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=6)))
    return rows, cuts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_the_alarms_of_a_stream_do_not_depend_on_how_it_is_cut_into_batches(stream):
    rows, cuts = stream
    assert run_in_batches(rows, cuts) == run_in_batches(rows, [])


def test_a_patients_news2_is_not_judged_stale_by_another_patients_newer_readings():
    # A's full panel scores NEWS2 >= 7 at BASE; in the same batch B, whose gateway is live, reads 5 h
    # later. A's values are A's latest: whether B is in A's batch must not change A's early warning.
    a = columns(["A"] * 5, PANEL, [30.0, 85.0, 85.0, 140.0, 39.5], [BASE] * 5)
    b = columns(["B"], ["heart_rate"], [70.0], [BASE + 5 * HOUR])
    alone, together = DetectorEngine(stages=[News2Stage()]), DetectorEngine(stages=[News2Stage()])
    want = event_keys(alone.process(a).events)
    assert "early_warning" in {c for c in alone.active_alarms()["A"]}
    got = event_keys(together.process(ReadingColumns.concat([a, b])).events)
    assert got == want
    assert together.scores["news2"][together.table.index["A"]] == alone.scores["news2"][alone.table.index["A"]]


def test_an_hours_late_reading_does_not_clear_a_silent_devices_alarm():
    # The monitor went silent after BASE; a gateway then forwards an hour-old SpO2 reading (the first
    # SpO2 this patient has, so it is in order for its metric). The device is still silent.
    engine = DetectorEngine(stale_after_ms=60_000)
    engine.process(columns(["p1"], ["heart_rate"], [80.0], [BASE]))
    raised = engine.tick(BASE + 120_000).events
    assert [(e.alert.condition, e.type.value) for e in raised] == [("device_silent", "raised")]
    late = engine.process(columns(["p1"], ["spo2"], [97.0], [BASE - HOUR]))
    assert [e for e in late.events if e.alert.condition == "device_silent"] == []
    assert engine.tick(BASE + 180_000).events == []  # still raised, nothing new to say
    # a reading newer than the last one before the silence does clear it
    back = engine.process(columns(["p1"], ["heart_rate"], [81.0], [BASE + 200_000]))
    assert [(e.alert.condition, e.type.value) for e in back.events] == [("device_silent", "cleared")]


def stored(lines) -> dict:
    """What InfluxDB holds after ``lines`` are written in order: per (series, time) the fields, a later
    write of a field overwriting it, the others kept."""
    table: dict = {}
    for ln in lines:
        head, fields, ts = ln.split(" ")
        point = table.setdefault((head, ts), {})
        point.update(f.split("=", 1) for f in fields.split(","))
    return table


def test_a_reading_resent_within_its_own_batch_keeps_its_clean_value_in_storage():
    # A gateway that resends a request at once: the consumer fetches both copies in one batch.
    once = DetectorEngine().process(columns(["p1"], ["heart_rate"], [80.0], [BASE]))
    twice = DetectorEngine().process(columns(["p1"] * 2, ["heart_rate"] * 2, [80.0] * 2, [BASE] * 2))
    assert twice.late == 1
    assert stored(twice.vitals_lines) == stored(once.vitals_lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.tuples(st.integers(0, 59), st.integers(0, 60)), max_size=10))
def test_resent_readings_change_no_alarm_and_no_stored_row_however_the_stream_is_cut(stream, resends):
    rows, cuts = stream
    with_repeats = list(rows)
    for which, where in resends:  # a reading sent again, later in the stream (or right after itself)
        if which < len(rows):
            with_repeats.insert(min(max(where, with_repeats.index(rows[which]) + 1), len(with_repeats)),
                                rows[which])

    def run(rs, cuts):
        engine = DetectorEngine(stages=[News2Stage()])
        bounds, events, vitals, alerts = [0, *cuts, len(rs)], [], [], set()
        for a, b in zip(bounds, bounds[1:]):
            if a < b:
                out = engine.process(columns(*zip(*rs[a:b])))
                events += out.events
                vitals += out.vitals_lines
                alerts |= set(out.alert_lines)
        return event_keys(events), stored(vitals), alerts

    want = run(rows, [])
    assert run(with_repeats, []) == want
    assert run(with_repeats, [c for c in cuts if c < len(with_repeats)]) == want


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(1, 6), st.randoms(use_true_random=False), st.lists(st.integers(0, 59), max_size=6))
def test_a_batch_computed_in_parts_of_a_few_rounds_gives_what_one_call_gives(stream, max_rounds, rnd, resent):
    """The worker computes a flushed backlog in parts (DetectorEngine.split_rounds): whatever the
    batch's order, its repeats and its patients' backlogs, the parts give the same alarms, the same
    stored points and the same late count as one call on the batch."""
    rows, _ = stream
    batch = rows + [rows[i] for i in resent if i < len(rows)]  # a gateway resending some of them
    rnd.shuffle(batch)  # and in no particular order
    cols = columns(*zip(*batch))

    def run(parts):
        engine = DetectorEngine(stages=[News2Stage()])
        outs = [engine.process(part, rows=r) for part, r in parts(engine)]
        return (event_keys([e for o in outs for e in o.events]), stored([ln for o in outs for ln in o.vitals_lines]),
                sorted(ln for o in outs for ln in o.alert_lines), sum(o.late for o in outs))

    split = run(lambda engine: engine.split_rounds(cols, max_rounds))
    assert split == run(lambda engine: [(cols, None)])
    engine = DetectorEngine()
    parts = engine.split_rounds(cols, max_rounds)
    assert sum(len(part) for part, _ in parts) == len(cols)
    for part, _ in parts:  # no patient has more than max_rounds reading times in a part
        for patient in set(part.patient.tolist()):
            assert len(set(part.ts[part.patient == patient].tolist())) <= max_rounds


def ecg_chunk(beating: bool, fs: int = 250, seconds: int = 5):
    import numpy as np

    t = np.arange(seconds * fs) / fs
    if not beating:
        return np.zeros_like(t)
    return sum(np.exp(-((t - b) / 0.012) ** 2) for b in np.arange(0.3, seconds, 0.8))


def test_an_asystole_streamed_in_chunks_is_one_alarm_that_clears_when_the_beats_return():
    # A monitor streams its ECG in 5 s chunks: 20 s without a beat, then the heart beats again.
    engine = DetectorEngine()
    events = []
    for k, beating in enumerate([False, False, False, False, True, True]):
        events += engine.waveform("p1", ecg_chunk(beating), None, 250, BASE + 5000 * (k + 1))
    assert [(e.alert.condition, e.type.value) for e in events] == [("asystole", "raised"), ("asystole", "cleared")]
    assert events[0].alert.id == events[1].alert.id
    # a chunk resent, or one arriving late, changes nothing
    assert engine.waveform("p1", ecg_chunk(False), None, 250, BASE + 5000) == []
    assert engine.waveform("p1", ecg_chunk(False), None, 250, BASE + 30_000) == []


def test_an_asystole_alarm_survives_a_checkpoint_and_is_cleared_once_after_the_restore():
    from detectors.state_records import read_record

    engine = DetectorEngine()
    raised = engine.waveform("p1", ecg_chunk(False), None, 250, BASE + 5000)
    records = engine.state_records(["p1"], {0: 10})
    restored = DetectorEngine()
    assert restored.load_records({"p1": read_record(records[0])}) == (["p1"], 0)
    assert restored.waveform("p1", ecg_chunk(False), None, 250, BASE + 10_000) == []  # still the same episode
    cleared = restored.waveform("p1", ecg_chunk(True), None, 250, BASE + 15_000)
    assert [(e.alert.id, e.type.value) for e in cleared] == [(raised[0].alert.id, "cleared")]
