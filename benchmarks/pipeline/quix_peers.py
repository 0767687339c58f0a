"""The Quix Streams 3 peers: what a Python team would build instead of WardWatch.

* ``quixstreams_store`` does WardWatch's job: per-patient state in Quix Streams' RocksDB store, the
  engine's limit rules (``DEFAULT_RULES``, the same delays and hysteresis), NEWS2 once per patient
  and reading time (:mod:`.news2_table`, the points of :func:`detectors.scores.news2.news2`), every
  reading and, as often as the
  engine writes them (``detectors.engine.SCORE_WRITE_EVERY_MS``), every score written to InfluxDB
  through :class:`.influx_sink.InfluxLineSink` (flushed at every checkpoint, before the commit),
  and alarms as ``AlertEvent`` JSON on the alerts topic, which the alert service reads.
* ``quixstreams`` keeps only the rules and the alarms (no storage, no score): the storage-free row.

Neither cleans the signals (no Hampel or sensor-off filter): the benchmark's load has no artefacts.
"""

from __future__ import annotations

import tempfile
import threading

from wardwatch.kafka import librdkafka_options
from wardwatch.lineprotocol import score_line, vitals_line
from wardwatch.settings import Settings
from wardwatch.topics import Topics

from detectors.engine import SCORE_WRITE_EVERY_MS
from ..naive import PatientRules
from . import news2_table
from .alarms import RULES, alert_event

COMMIT_INTERVAL_S = 1.0  # a checkpoint (sink flush, then commit) every second


def _app(settings: Settings, group: str):
    from quixstreams import Application

    extra = librdkafka_options(settings)  # the same SASL principal and mechanism as every build
    return Application(broker_address=settings.kafka_bootstrap, consumer_extra_config=extra,
                       producer_extra_config=extra, consumer_group=group, auto_offset_reset="earliest",
                       state_dir=tempfile.mkdtemp(prefix="ww-quix-"), commit_interval=COMMIT_INTERVAL_S,
                       loglevel="WARNING")


def _alarms(value: dict, rules: PatientRules) -> list[bytes]:
    changes = rules.update(RULES, value["metric"], float(value["value"]), int(value["ts"]))
    return [alert_event(value["patient"], c).to_json() for c in changes]


def rules_step(value: dict, state) -> list[bytes]:
    """The storage-free peer's work for one reading: the limit rules; the alarm events it raises."""
    rules = PatientRules.from_dict(state.get("rules"))
    events = _alarms(value, rules)
    state.set("rules", rules.to_dict())
    return events


def _vitals_line(patient: str, metric: str, v: float, device: str, quality: float | None, ts: int) -> str:
    """The engine's point for a reading (one point per patient-time: wardwatch.lineprotocol)."""
    return vitals_line(patient, metric, v, device, v, quality, ts)


def store_step(value: dict, state) -> dict:
    """``quixstreams_store``'s work for one reading: the lines to store and the alarm events.

    A patient's readings of one time arrive one by one, so its NEWS2 is computed when the first
    reading of a later time comes (on the values of the time that is complete), once a time."""
    s = state.get("p") or {"rules": None, "latest": {}, "t": None, "written": None}
    patient, metric, v, ts = value["patient"], value["metric"], float(value["value"]), int(value["ts"])
    lines = [_vitals_line(patient, metric, v, value["device"], value.get("quality"), ts)]
    t = s["t"]
    if t is not None and ts > t:
        total, partial, parts = news2_table.score(s["latest"])
        if s["written"] is None or t - s["written"] >= SCORE_WRITE_EVERY_MS:
            lines.append(score_line(patient, "news2", total, partial, "; ".join(news2_table.reasons(parts)), t))
            s["written"] = t
    if t is None or ts > t:
        s["t"] = ts
    s["latest"][metric] = v
    rules = PatientRules.from_dict(s["rules"])
    events = _alarms(value, rules)
    s["rules"] = rules.to_dict()
    state.set("p", s)
    return {"lines": lines, "alarms": events}


def run(build: str, settings: Settings, inp: str, group: str, seconds: float) -> None:
    """Run ``build`` ("quixstreams" or "quixstreams_store") on topic ``inp`` for ``seconds``."""
    app = _app(settings, group)
    src = app.topic(inp, value_deserializer="json")
    alerts = app.topic(Topics(settings.topic_prefix).alerts, value_serializer="bytes")
    sdf = app.dataframe(src)
    if build == "quixstreams":
        sdf.apply(rules_step, stateful=True, expand=True).to_topic(alerts)
    else:
        from .influx_sink import InfluxLineSink

        out = sdf.apply(store_step, stateful=True)
        out.apply(lambda o: o["lines"]).sink(InfluxLineSink(settings))  # branch 1: InfluxDB
        out.apply(lambda o: o["alarms"], expand=True).to_topic(alerts)  # branch 2: the alerts topic
    timer = threading.Timer(seconds, app.stop)
    timer.daemon = True  # a build stopped earlier (SIGTERM) exits at once, not when the timer fires
    timer.start()
    app.run()
