"""Every alarm text a nurse reads, in clinical words, from one catalogue keyed by alarm condition.

The detectors, the alert service and the pages all take their words from here, so a condition is
named the same way in the alarm list, the chart and the audit trail: the clinical name, the value
with its unit, how long it has lasted and why (e.g. "Early warning: risk score 0.15 - heart rate up
22/min and respiration up 6/min over 6 h"). The learned risk is called a *score*, not a
percentage: it is not calibrated as a probability. ``tests/core/test_alarm_texts.py`` finds every
condition the detectors can raise in their code and rule table and checks that it has a text here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .alarm_rules import DEFAULT_RULES, LimitRule
from .metrics_catalog import CATALOG, EXPECTED_INTERVAL_S, Metric

# How a unit is written for a nurse (UCUM codes are for machines).
UNIT_TEXT = {"/min": "/min", "%": "%", "Cel": "°C", "mm[Hg]": "mmHg", "1": ""}

# Clinical names where the catalogue's label is a code or too terse for an alarm.
METRIC_TEXT: dict[str, str] = {m.value: CATALOG[m].label for m in Metric} | {
    Metric.resp_rate.value: "Respiration rate", Metric.spo2.value: "SpO₂", Metric.etco2.value: "End-tidal CO₂",
    Metric.sbp.value: "Systolic blood pressure", Metric.dbp.value: "Diastolic blood pressure",
    Metric.temperature.value: "Temperature"}

# Which probe a sensor-off alarm is about (a nurse checks the probe, not the number).
PROBE_TEXT = {Metric.heart_rate.value: "ECG leads", Metric.spo2.value: "SpO₂ probe",
              Metric.resp_rate.value: "Respiration sensor", Metric.sbp.value: "Blood pressure cuff or line",
              Metric.temperature.value: "Temperature probe", Metric.etco2.value: "Capnography line",
              Metric.pulse_rate.value: "Pulse source (oximeter, arterial line or cuff)", Metric.dbp.value: "Blood pressure cuff or line",
              Metric.map.value: "Blood pressure cuff or line"}

NEWS2_BAND = {"news2_high": "high clinical risk", "news2_medium": "medium clinical risk",
              "news2_single_3": "a single parameter scoring 3"}
# The early-warning stages' alarm conditions: the alarm is "early_warning", these say which score.
EARLY_WARNING_SOURCES = frozenset(NEWS2_BAND) | {"risk_medium", "risk_high"}


@dataclass(frozen=True)
class AlarmEntry:
    """One alarm condition family: its clinical title and whether IEC 60601-1-8 calls it technical
    (about the equipment, not the patient)."""

    title: str
    technical: bool


LIMIT_ENTRIES: dict[str, AlarmEntry] = {
    r.condition: AlarmEntry(f"{METRIC_TEXT[r.metric.value]} {'critically ' if 'critical' in r.condition else ''}"
                            f"{'low' if r.side == 'low' else 'high'}", False) for r in DEFAULT_RULES}
CATALOGUE: dict[str, AlarmEntry] = LIMIT_ENTRIES | {
    "sensor_off": AlarmEntry("Sensor off", True),
    "signal_lost": AlarmEntry("Signal lost", True),
    "clock_ahead": AlarmEntry("Device clock ahead: readings not judged", True),
    "device_silent": AlarmEntry("No data from the monitor", True),
    "asystole": AlarmEntry("Asystole", False),
    "ecg_signal_poor": AlarmEntry("ECG signal poor", True),
    "early_warning": AlarmEntry("Early warning", False),
    "processing_error": AlarmEntry("Readings could not be processed", True),
    "device": AlarmEntry("Monitor alarm", False),
    "feed_down": AlarmEntry("Feed down", True),
    "monitoring_stopped": AlarmEntry("Monitoring stopped", True),
}


def entry(condition: str) -> AlarmEntry | None:
    """The catalogue entry of a condition as the detectors name it (``sensor_off_spo2`` -> sensor off,
    ``device:MDC_EVT_HI`` -> monitor alarm); None for a condition the catalogue does not know."""
    if condition in CATALOGUE:
        return CATALOGUE[condition]
    for probe in ("sensor_off", "signal_lost", "clock_ahead"):
        if condition.startswith(probe + "_") and condition[len(probe) + 1:] in METRIC_TEXT:
            return CATALOGUE[probe]
    if condition.startswith("device:"):
        return CATALOGUE["device"]
    return None


def in_sentence(metric: str) -> str:
    """A metric's name inside a sentence ("no valid heart rate"; SpO₂ keeps its capitals)."""
    name = METRIC_TEXT[metric]
    return name if name.startswith("SpO") or name[1:2].isupper() else name[0].lower() + name[1:]


def title(condition: str) -> str:
    """The clinical name of a condition (for lists, chart markers and the audit trail)."""
    if condition.startswith("sensor_off_"):
        return f"{PROBE_TEXT.get(condition[len('sensor_off_'):], 'Sensor')} off"
    if condition.startswith("signal_lost_"):
        return f"{PROBE_TEXT.get(condition[len('signal_lost_'):], 'Sensor')}: signal lost"
    if condition.startswith("clock_ahead_") and condition[len("clock_ahead_"):] in METRIC_TEXT:
        return f"{METRIC_TEXT[condition[len('clock_ahead_'):]]}: device clock ahead"
    e = entry(condition)
    return e.title if e else condition.replace("_", " ")


def unit(metric: str) -> str:
    return UNIT_TEXT.get(CATALOG[Metric(metric)].unit, CATALOG[Metric(metric)].unit)


def value_text(metric: str, value: float) -> str:
    u = unit(metric)
    return f"{value:.3g}{' ' if u and u not in ('%', '/min', '°C') else ''}{u}"


def duration(ms: float) -> str:
    s = max(0, round(ms / 1000))
    return f"{s} s" if s < 120 else f"{round(s / 60)} min" if s < 7200 else f"{s / 3600:.3g} h"


# ----------------------------------------------------------------------------- physiological


def limit_raised(rule: LimitRule, value: float, limit: float) -> str:
    """"SpO₂ low: 86% for 15 s (alarm limit 90%)"."""
    held = f" for {duration(rule.delay_ms)}" if rule.delay_ms else ""
    return (f"{LIMIT_ENTRIES[rule.condition].title}: {value_text(rule.metric.value, value)}{held}"
            f" (alarm limit {value_text(rule.metric.value, limit)})")


def limit_cleared(rule: LimitRule, value: float) -> str:
    return f"{METRIC_TEXT[rule.metric.value]} back to {value_text(rule.metric.value, value)}"


def asystole(gap_s: float, pleth_sqi: float) -> str:
    return f"Asystole: no heartbeat on the ECG for {gap_s:.1f} s and no good pulse on the pleth (quality {pleth_sqi:.2f})"


_TREND = re.compile(r"^(HR|SpO2|temperature|SBP|MAP|RR) (rising|falling) ([\d.]+) over (\d+ h)$")
_TREND_NAME = {"HR": ("heart rate", "/min"), "SpO2": ("SpO₂", "%"), "temperature": ("temperature", " °C"),
               "SBP": ("systolic pressure", " mmHg"), "MAP": ("mean pressure", " mmHg"), "RR": ("respiration", "/min")}
_NEWS_PART = re.compile(r"^(\w+) \+(\d)$")
_NEWS_NAME = {"respiration": "respiration", "spo2": "SpO₂", "systolic_bp": "systolic pressure", "pulse": "pulse",
              "temperature": "temperature", "consciousness": "consciousness", "air_or_oxygen": "oxygen"}


def reasons_text(reasons: list[str]) -> tuple[float | None, str]:
    """The score and the reasons of the early-warning stages (their own short forms, e.g.
    ``["risk 0.15", "HR rising 22 over 6 h"]`` or ``["respiration +2", "missing: temperature"]``) in
    words: (risk score or None, "heart rate up 22/min over 6 h")."""
    score, trends, parts, other = None, {}, [], []
    for r in reasons:
        if m := re.fullmatch(r"risk ([\d.]+)", r):
            score = float(m.group(1))
        elif m := _TREND.match(r):
            name, u = _TREND_NAME[m.group(1)]
            trends.setdefault(m.group(4), []).append(f"{name} {'up' if m.group(2) == 'rising' else 'down'} {m.group(3)}{u}")
        elif m := _NEWS_PART.match(r):
            parts.append(f"{_NEWS_NAME.get(m.group(1), m.group(1).replace('_', ' '))} {m.group(2)}")
        elif r.startswith("missing: "):
            other.append("not measured: " + ", ".join(_NEWS_NAME.get(x, x.replace("_", " ")) for x in r[9:].split(", ")))
        else:
            other.append(r)
    words = [" and ".join(ts) + f" over {span}" for span, ts in trends.items()]
    if parts:
        words.insert(0, "points for " + ", ".join(parts))
    return score, "; ".join(words + other)


def early_warning(source: str, reasons: list[str]) -> str:
    """"Early warning: risk score 0.15 - heart rate up 22/min and respiration up 6/min over 6 h",
    or "Early warning: NEWS2 7, high clinical risk - points for respiration 3, pulse 2, ..."."""
    score, why = reasons_text(list(reasons))
    if source.startswith("news2"):
        total = sum(int(m.group(2)) for r in reasons if (m := _NEWS_PART.match(r)))
        head = f"NEWS2 {total}, {NEWS2_BAND.get(source, 'raised')}"
    else:
        head = f"risk score {score:.2f}" if score is not None else "risk score raised"
        head += " (high)" if source == "risk_high" else ""
    return f"Early warning: {head}" + (f" - {why}" if why else "")


def early_warning_cleared() -> str:
    return "Early warning: score back to low risk"


# ----------------------------------------------------------------------------- technical


def sensor_off(metric: str, held_ms: int) -> str:
    return f"{PROBE_TEXT.get(metric, 'Sensor')} off or disconnected: no valid {in_sentence(metric)} for {duration(held_ms)}"


def signal_lost(metric: str, silent_ms: int) -> str:
    return (f"{PROBE_TEXT.get(metric, 'Sensor')}: no {in_sentence(metric)} for {duration(silent_ms)} while other readings "
            f"go on: check the probe and its device")


def clock_ahead(metric: str, ahead_ms: int) -> str:
    return (f"{METRIC_TEXT[metric]} readings are not being judged: the last one judged is stamped "
            f"{duration(max(ahead_ms, 1000))} ahead of the clock (the device's clock jumped). Check the patient; "
            f"set the device's clock")


def clock_back(metric: str) -> str:
    return f"{METRIC_TEXT[metric]} readings judged again"


def sensor_back(metric: str) -> str:
    return f"{METRIC_TEXT[metric]} signal back"


def device_silent(silent_ms: int) -> str:
    return f"No data from the monitor for {duration(silent_ms)}: check the monitor and its network at the bedside"


def device_back() -> str:
    return "Monitor reporting again"


def ecg_signal_poor(gap_s: float, pleth_rate: float, pleth_sqi: float) -> str:
    return (f"ECG signal poor: no beat on the ECG for {gap_s:.1f} s but the pleth shows a pulse of {pleth_rate:.0f}/min"
            f" (quality {pleth_sqi:.2f}): check the ECG leads")


def ecg_missing(share: float) -> str:
    return f"ECG signal missing ({share:.0%} of the samples): check the ECG leads"


def ecg_back() -> str:
    return "ECG shows beats again"


def processing_error() -> str:
    return "Readings could not be processed and were set aside: alarms for this patient may be missing; inform IT"


def device_alarm(what: str) -> str:
    return f"Monitor: {what}"


# The page's own technical states (the pages fetch these, see alerts/web.py /alarm-texts.json).
PAGE_TEXTS = {
    "feed_down": "FEED DOWN: WardWatch is not receiving the alarm feed, so alarms and values may be missing. "
                 "The devices may be fine. Check patients directly; reconnecting…",
    "monitoring_stopped": "MONITORING STOPPED: no alarms are being raised. Check patients directly and call IT.",
    "device_silent": "No data from the monitor",
    "sensor_off": "sensor off",
    "stale_value": "old",
}


def page_catalogue() -> dict:
    """What the pages need: every condition's title and whether it is technical, and their own texts."""
    return {"titles": {c: {"title": e.title, "technical": e.technical} for c, e in CATALOGUE.items()},
            "probes": PROBE_TEXT, "metrics": METRIC_TEXT, "units": {m.value: unit(m.value) for m in Metric},
            "expected_interval_s": {m.value: s for m, s in EXPECTED_INTERVAL_S.items()}, "page": PAGE_TEXTS}
