"""The binary state checkpoint: every array of every dirty row comes back bit for bit, compressed
(as the worker sends it) or not, a record of another layout or a damaged one is refused (loudly,
and the patient starts fresh), and old JSON records still load."""

from __future__ import annotations

import logging
import time

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from hypothesis.extra.numpy import arrays

from detectors.engine import DetectorEngine
from detectors.scores.news2 import News2Stage
from detectors.scores.risk import RiskStage
from detectors.state_records import COMPRESSED, PLAIN, compress_records, read_record
from detectors.worker import DetectorWorker
from wardwatch.alarm_rules import DEFAULT_RULES
from wardwatch.bus import MemoryBus
from wardwatch.models import Reading
from wardwatch.settings import Settings

from .helpers import columns


class RecentValues:
    """A score stage whose state is not in arrays (a list per patient): the JSON fallback carries it."""

    name = "recent"

    def __init__(self) -> None:
        self.recent: dict[int, list[float]] = {}

    def resize(self, n_rows: int) -> None:
        return None

    def state_dict(self, rows: np.ndarray) -> dict:
        vals = self.recent.get(int(rows[0]))
        return {"recent": vals} if vals else {}

    def load_state(self, rows: np.ndarray, state: dict) -> None:
        self.recent[int(rows[0])] = list(state["recent"])


def engine(**kw) -> DetectorEngine:
    # The risk stage without its model: its arrays are what a checkpoint carries.
    return DetectorEngine(stages=[News2Stage(alarms=False), RiskStage(), RecentValues()], **kw)


def element_strategy(dtype: np.dtype):
    if dtype.kind == "f":
        return st.floats(width=8 * dtype.itemsize, allow_nan=True, allow_infinity=True)
    if dtype.kind == "b":
        return st.booleans()
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


def plain(**kw) -> DetectorEngine:
    """An engine that can process readings (NEWS2 alone: the model's forest costs seconds here)."""
    return DetectorEngine(stages=[News2Stage()], **kw)


FIELDS = [(label, getattr(o, n).dtype, getattr(o, n).shape[1:]) for label, o, n in engine()._state_fields()]


@st.composite
def dirty_rows(draw):
    """Patients, the rows a checkpoint saves, random contents of every checkpointed array, covers."""
    n = draw(st.integers(1, 12))
    dirty = sorted(draw(st.sets(st.integers(0, n - 1), min_size=1)))
    values = {label: draw(arrays(dt, (len(dirty),) + shape, elements=element_strategy(dt)))
              for label, dt, shape in FIELDS}
    recent = {r: draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3)) for r in dirty}  # JSON: finite
    covers = draw(st.dictionaries(st.integers(0, 63), st.integers(0, 2**62), max_size=6))
    return n, dirty, values, recent, covers


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(dirty_rows())
def test_binary_state_of_random_rows_round_trips_every_array_exactly(case):
    n, dirty, values, recent, covers = case
    src = engine()
    patients = [f"p{i}" for i in range(n)]
    rows = np.array([src._row(p) for p in patients])[dirty]
    fields = {label: (o, name) for label, o, name in src._state_fields()}
    for label, vals in values.items():
        o, name = fields[label]
        getattr(o, name)[rows] = vals
    src.stages[2].recent = {int(rows[i]): recent[r] for i, r in enumerate(dirty)}

    plain_records = src.state_records([patients[r] for r in dirty], covers)
    for records in (plain_records, compress_records(plain_records)):
        read = [read_record(rec) for rec in records]
        assert all(r.kind == "binary" and r.covers == covers for r in read)

        dst = engine()
        dst._row("someone-else")  # the restoring engine's rows differ from the saving one's
        loaded, refused = dst.load_records({patients[r]: rec for r, rec in zip(dirty, read)})
        assert sorted(loaded) == sorted(patients[r] for r in dirty) and refused == 0
        dst_rows = np.array([dst.table.index[patients[r]] for r in dirty])
        for label, o, name in dst._state_fields():
            got = getattr(o, name)[dst_rows]
            assert got.tobytes() == values[label].tobytes(), label  # bit for bit: NaN payloads, -0.0, extremes
        assert [dst.stages[2].recent.get(int(r), []) for r in dst_rows] == [recent[r] for r in dirty]


def state_after_a_desaturation(e: DetectorEngine, patient: str = "p1") -> DetectorEngine:
    t0 = 1_700_000_000_000
    e.process(columns(patient, "spo2", [97.0] * 5 + [84.0] * 20, [t0 + 1000 * i for i in range(25)]))
    return e


def test_a_record_of_another_layout_is_refused_and_the_patient_starts_fresh():
    other = state_after_a_desaturation(plain(rules=DEFAULT_RULES[:-1]))  # one limit rule fewer
    same_shapes = state_after_a_desaturation(plain(rules=DEFAULT_RULES[::-1]))  # same shapes, rules reordered
    mine = plain()
    for source in (other, same_shapes):
        rec = read_record(source.state_records(["p1"], {0: 25})[0])
        assert rec.kind == "binary"
        assert mine.load_records({"p1": rec}) == ([], 1)
        assert mine.state_dict("p1") is None  # nothing was read as numbers of this layout
    truncated = read_record(state_after_a_desaturation(plain()).state_records(["p1"], {})[0][:-100])
    assert mine.load_records({"p1": truncated}) == ([], 1)


def test_a_damaged_compressed_record_is_refused_not_read_as_numbers():
    packed = compress_records(state_after_a_desaturation(plain()).state_records(["p1"], {0: 25}))[0]
    for damaged in (packed[:-20], packed[:-40] + b"\x00" * 40):
        rec = read_record(damaged)
        assert rec.kind == "unknown"
        assert plain().load_records({"p1": rec}) == ([], 1)


def test_a_tombstone_stays_a_tombstone_when_compressed():
    assert compress_records([b""]) == [b""]
    assert read_record(b"").kind == "tombstone"


def test_json_records_of_earlier_releases_still_load():
    old = state_after_a_desaturation(plain())
    wrapped = orjson.dumps({"covers": {"3": 25}, "state": orjson.Fragment(old.state_dict("p1"))})
    for value, covers in ((wrapped, {3: 25}), (old.state_dict("p1"), {})):  # with offsets, and the bare document
        rec = read_record(value)
        assert rec.kind == "json" and rec.covers == covers
        new = plain()
        assert new.load_records({"p1": rec}) == (["p1"], 0)
        assert new.state_dict("p1") == old.state_dict("p1")


async def test_a_worker_refuses_another_layouts_state_loudly_without_naming_the_patient(caplog, tmp_path):
    settings = Settings(backend="embedded", readings_partitions=1, stale_after_s=10**9, data_dir=tmp_path)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    producer = bus.producer()
    other = state_after_a_desaturation(plain(rules=DEFAULT_RULES[:-1]), "patient-xyz")
    good = state_after_a_desaturation(plain(), "patient-abc")
    await producer.send_many(bus.topics.state, [(b"patient-xyz", other.state_records(["patient-xyz"], {0: 25})[0]),
                                                (b"patient-abc", good.state_records(["patient-abc"], {0: 25})[0])])
    worker = DetectorWorker(settings, bus=bus, engine_factory=plain)
    with caplog.at_level(logging.ERROR, logger="wardwatch.detect"):
        await worker.start()
    try:
        assert worker.engine.state_dict("patient-xyz") is None
        assert worker.engine.state_dict("patient-abc") == good.state_dict("patient-abc")
        assert any("refused 1 state record" in r.getMessage() for r in caplog.records)
        assert not any("xyz" in r.getMessage() for r in caplog.records)  # no patient id in the logs
        assert worker.metrics.state_refused._value.get() == 1
        ok, detail = worker.health()
        assert not ok and detail["state_refused_recently"]
    finally:
        await worker.supervisor.stop()
        await worker.consumer.stop()


async def test_the_worker_checkpoints_compressed_records_that_a_new_worker_restores(tmp_path):
    settings = Settings(backend="embedded", readings_partitions=1, stale_after_s=10**9, data_dir=tmp_path)
    bus = MemoryBus(settings)
    await bus.ensure_topics()
    t0 = int(time.time() * 1000) - 600_000  # recent: readings from long ago would be dead-lettered
    values = [97.0] * 5 + [84.0] * 20
    await bus.producer().send_many(bus.topics.readings, [
        (p.encode(), Reading(patient=p, device=f"d-{p}", metric="spo2", unit="%", value=v, ts=t0 + 1000 * i)
         .model_dump_json().encode())
        for p in ("p1", "p2") for i, v in enumerate(values)])
    first = DetectorWorker(settings, bus=bus, engine_factory=plain)
    await first.start()
    try:
        while await first.step(timeout_ms=0):
            pass
        await first.flush()
    finally:
        await first.supervisor.stop()
        await first.consumer.stop()

    saved = [m.value for part in bus.log(bus.topics.state) for m in part.records]
    assert len(saved) == 2 and all(v[:3] == b"WWS" and v[3] == COMPRESSED for v in saved)
    as_built = first.engine.state_records(["p1"], {0: 50})[0]
    assert as_built[3] == PLAIN and len(saved[0]) < len(as_built) / 3  # mostly empty history: it shrinks

    second = DetectorWorker(settings, bus=bus, engine_factory=plain)
    await second.start()
    try:
        for p in ("p1", "p2"):
            assert second.engine.state_dict(p) == first.engine.state_dict(p)
    finally:
        await second.supervisor.stop()
        await second.consumer.stop()
