"""Pydantic models at the edges: a reading, a rejected input, an alert and its lifecycle events.

The hot path does not build these per message; it works on numpy columns (see ``wardwatch.codec``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .identifiers import PATTERN as ID_PATTERN
from .metrics_catalog import CATALOG, Metric


def now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def reading_id(device: str, metric: str, ts_ms: int) -> str:
    """A stable id for dedupe: the same device, metric and device time always give the same id."""
    return hashlib.blake2b(f"{device}|{metric}|{ts_ms}".encode(), digest_size=10).hexdigest()


class Reading(BaseModel):
    """One vital-sign value from one device, in the metric's canonical UCUM unit.

    ``ts`` is the device's time and ``received`` the gateway's or ingest's, both epoch milliseconds
    (UTC), so that a reading is one small JSON object on the wire.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field("", pattern=r"^$|" + ID_PATTERN)
    patient: str = Field(pattern=ID_PATTERN)
    device: str = Field(pattern=ID_PATTERN)
    metric: Metric
    value: float = Field(allow_inf_nan=False)
    unit: str = Field(min_length=1, max_length=32)
    ts: int = Field(ge=0, description="device timestamp, epoch ms UTC")
    received: int | None = Field(None, ge=0, description="received timestamp, epoch ms UTC")
    quality: float | None = Field(None, ge=0, le=1, description="signal quality 0..1 where the device gives one")

    @model_validator(mode="after")
    def _fill_id(self) -> "Reading":
        if not self.id:
            object.__setattr__(self, "id", reading_id(self.device, self.metric.value, self.ts))
        return self

    @property
    def loinc(self) -> str:
        return CATALOG[self.metric].loinc


class RejectedInput(BaseModel):
    """What goes to the dead-letter topic: the original payload, why it was rejected, and from where."""

    source: str  # "http:json", "http:fhir", "http:hl7v2", "kafka:readings", ...
    reason: str  # a short machine-readable code, e.g. "impossible_value"
    detail: str  # a human-readable explanation
    payload: str  # the original input, its first bytes (wardwatch.codec.MAX_PAYLOAD_KEEP) as text
    payload_bytes: int = 0  # the size of the original input as received
    payload_sha256: str = ""  # of the original input as received: identifies it beyond the kept bytes
    received: int = Field(default_factory=now_ms)
    index: int | None = None  # position in the batch it came in


class AlertKind(StrEnum):
    physiological = "physiological"
    technical = "technical"
    device = "device"  # a bedside monitor's own alarm (IHE PCD-04), shown beside WardWatch's, never mixed in


class Priority(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"

    @property
    def rank(self) -> int:
        return {"low": 1, "medium": 2, "high": 3}[self.value]

    def raised(self) -> "Priority":
        return {"low": Priority.medium, "medium": Priority.high, "high": Priority.high}[self.value]


class AlertState(StrEnum):
    active = "active"  # condition present, nobody has acknowledged
    acknowledged = "acknowledged"  # a person has seen it; condition may still be present
    cleared = "cleared"  # condition ended (a latched high alarm stays shown until acknowledged)
    resolved = "resolved"  # closed by a person, or cleared and acknowledged


class AlertEventType(StrEnum):
    raised = "raised"
    escalated = "escalated"
    updated = "updated"
    cleared = "cleared"
    acknowledged = "acknowledged"
    audio_paused = "audio_paused"
    resolved = "resolved"


class DeviceAlarmState(StrEnum):
    active = "active"  # the monitor reports the alarm condition present
    ended = "ended"  # the monitor reports it over (event phase end, alarm state inactive or off)


class DeviceAlarm(BaseModel):
    """A bedside monitor's own alarm, one report of it (IHE PCD-04 ACM, ORU^R40), on the device-alarms topic.

    ``id`` names the alarm instance on that device (the same for its start, updates and end);
    ``event_id`` names this report (a resent report has the same one, so it shows once). What the
    monitor wrote is kept as written beside what WardWatch maps it to (``priority``, ``state``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    event_id: str = Field(min_length=1, max_length=200)
    patient: str = Field(pattern=ID_PATTERN)
    device: str = Field(pattern=ID_PATTERN)
    event: str = Field(max_length=80)  # the MDC event, e.g. "MDC_EVT_HI" (its reference id when written), else its code
    event_code: int | None = None  # the MDC code, e.g. 196648
    source: str = Field("", max_length=80)  # what alarmed, e.g. "MDC_PULS_OXIM_SAT_O2"
    source_metric: str | None = None  # WardWatch's metric for the source, when it is one
    source_value: float | None = Field(None, allow_inf_nan=False)
    source_unit: str = Field("", max_length=32)
    limits: str = Field("", max_length=40)  # the source's alarm limits as written (OBX-7), e.g. "90-96"
    priority: Priority  # WardWatch's reading of device_priority (medium when the monitor gave none)
    device_priority: str = Field("", max_length=40)  # as written: PH, PM, PL, PN, PI or a word
    alert_type: str = Field("", max_length=20)  # physiological (SP), technical (ST), advisory (SA)
    phase: str = Field("", max_length=20)  # MDC_ATTR_EVENT_PHASE as written: start, continue, end, ...
    alarm_state: str = Field("", max_length=20)  # MDC_ATTR_ALARM_STATE as written: active, latched, inactive, off
    inactivation: str = Field("", max_length=30)  # MDC_ATTR_ALARM_INACTIVATION_STATE: enabled, audio-paused, ...
    state: DeviceAlarmState
    text: str = Field("", max_length=200)  # the monitor's own alarm text
    ts: int = Field(ge=0, description="device time of this report, epoch ms UTC")
    received: int = Field(default_factory=now_ms)
    location: dict[str, str] | None = None  # PV1-3 as written: point_of_care, room, bed, facility

    @property
    def acknowledged_at_device(self) -> bool:
        return self.inactivation == "alert-acknowledged"

    @property
    def silenced_at_device(self) -> bool:
        return self.inactivation in ("audio-paused", "audio-off", "alarm-paused", "alarm-off")


def alert_id(patient: str, condition: str, onset_ms: int) -> str:
    """Deterministic: a worker that replays the same readings derives the same id."""
    return "al-" + hashlib.blake2b(f"{patient}|{condition}|{onset_ms}".encode(), digest_size=8).hexdigest()


class Alert(BaseModel):
    id: str
    patient: str
    kind: AlertKind
    priority: Priority
    condition: str  # e.g. "spo2_low", "device_silent", "sensor_off"
    message: str  # why, in words, with the values behind it
    values: dict[str, float] = Field(default_factory=dict)
    onset: int  # epoch ms of the reading that started the condition
    raised_at: int
    updated_at: int
    state: AlertState = AlertState.active
    latched: bool = False
    escalation_level: int = 0
    acknowledged_by: str | None = None
    audio_paused_until: int | None = None
    monitor: DeviceAlarm | None = None  # kind "device": the monitor's latest report of its alarm


class AlertEvent(BaseModel):
    """One step in an alarm's life. ``event_id`` is deterministic so consumers can drop repeats."""

    event_id: str
    type: AlertEventType
    alert: Alert
    at: int
    by: str | None = None  # the user, for actions; None for the detector
    note: str | None = None
    seq: int | None = None  # assigned by the alert service, in order, per service

    @field_validator("event_id")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("event_id must not be empty")
        return v

    @staticmethod
    def make_id(alert_id_: str, type_: AlertEventType, at: int) -> str:
        return f"{alert_id_}:{type_.value}:{at}"

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> "AlertEvent":
        return cls.model_validate_json(data)


class Score(BaseModel):
    """An early-warning score at one time, with the reasons behind it."""

    patient: str
    name: str  # "news2", "risk", "iforest", "trend"
    value: float
    ts: int
    partial: bool = False
    reasons: list[str] = Field(default_factory=list)
    components: dict[str, Any] = Field(default_factory=dict)


class VitalsSnapshot(BaseModel):
    """What the live feed shows on a patient's tile: latest cleaned values and scores.

    Workers publish one per patient every few seconds (and when something changes), keyed by patient.
    """

    patient: str
    ts: int  # time of the newest reading behind it
    values: dict[str, float] = Field(default_factory=dict)  # metric -> latest cleaned value
    value_ts: dict[str, int] = Field(default_factory=dict)  # metric -> time of that value (its age on the page)
    news2: float | None = None
    news2_partial: bool = True
    risk: float | None = None
    stale_metrics: list[str] = Field(default_factory=list)  # metrics whose device went silent
    trend: dict[str, list[float]] = Field(default_factory=dict)  # metric -> short sparkline


# The ward the alert service files a patient under when the registry has none (not admitted, or
# discharged): no real ward may take the name, or its nurses would see every such patient.
UNASSIGNED = "unassigned"


class PatientRecord(BaseModel):
    """A monitored patient: where they are and which devices report for them. No names: ids only."""

    patient: str = Field(pattern=ID_PATTERN)
    ward: str = Field(pattern=ID_PATTERN)
    bed: str | None = Field(None, max_length=32)
    devices: list[str] = Field(default_factory=list)
    admitted: int = Field(default_factory=now_ms)
    discharged: int | None = None

    @field_validator("ward")
    @classmethod
    def _a_real_ward(cls, ward: str) -> str:
        if ward == UNASSIGNED:
            raise ValueError(f"{UNASSIGNED!r} is reserved for patients without a ward")
        return ward


class Retraction(BaseModel):
    """A device's or sender's withdrawal of one reading it sent before (HL7 OBX-11 D or W, FHIR
    ``entered-in-error``), on the readings topic with kind "retraction" so that it follows the
    patient's readings in order. The worker stores it; the history leaves the reading out from then
    on. It names the reading by patient, metric and device time, as the stored point is keyed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field("retraction", pattern="^retraction$")
    patient: str = Field(pattern=ID_PATTERN)
    device: str = Field(pattern=ID_PATTERN)
    metric: Metric
    ts: int = Field(ge=0, description="the withdrawn reading's device time, epoch ms")
    reason: str = Field(max_length=120, description="what withdrew it, e.g. 'HL7 OBX-11 W'")
    received: int | None = None


class WaveformChunk(BaseModel):
    """A short ECG and/or pleth chunk from a monitor (sent on the readings topic with kind "waveform")."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field("waveform", pattern="^waveform$")
    patient: str = Field(pattern=ID_PATTERN)
    device: str = Field(pattern=ID_PATTERN)
    fs: float = Field(ge=50, le=1000)
    t0: int = Field(ge=0, description="time of the first sample, epoch ms")
    ecg: list[float] = Field(default_factory=list, max_length=60_000)
    pleth: list[float] | None = Field(None, max_length=60_000)

    @model_validator(mode="after")
    def _lengths(self) -> "WaveformChunk":
        if len(self.ecg) < 2 * self.fs:
            raise ValueError("ecg needs at least 2 s of samples")
        if self.pleth is not None and len(self.pleth) != len(self.ecg):
            raise ValueError("pleth must be as long as ecg")
        return self

    @property
    def t_end(self) -> int:
        return self.t0 + int(len(self.ecg) / self.fs * 1000)
