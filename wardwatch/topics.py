"""Kafka topic names, derived from one prefix so that tests and tenants can run side by side."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str = "wardwatch."

    @property
    def readings(self) -> str:
        """Validated readings, keyed by patient."""
        return f"{self.prefix}readings"

    @property
    def deadletter(self) -> str:
        """Every rejected input with its original payload, reason and source."""
        return f"{self.prefix}deadletter"

    @property
    def alerts(self) -> str:
        """Alarm events the detector workers raise and clear, keyed by patient. Only they may write it."""
        return f"{self.prefix}alerts"

    @property
    def actions(self) -> str:
        """What happened to an alarm after it was raised (acknowledged, paused, resolved, escalated), keyed
        by patient. Only the alert service writes it: a separate topic, so an ACL can tell the two apart."""
        return f"{self.prefix}actions"

    @property
    def alert_log(self) -> str:
        """The alert services' shared log, one partition: every alarm event, action and audit row in
        one order, the offset + 1 being the seq that clients resume from (alerts/alertlog.py). The
        alert services write it: the detectors' alarms copied by one instance, actions by the one
        where a nurse acted."""
        return f"{self.prefix}alert-log"

    @property
    def tokens(self) -> str:
        """Compacted access tokens (hashed) and their revocations, keyed by token id: every service
        instance sees a token created or revoked anywhere (wardwatch/token_sync.py)."""
        return f"{self.prefix}tokens"

    @property
    def device_alarms(self) -> str:
        """Bedside monitors' own alarms (IHE PCD-04, ``DeviceAlarm``), keyed by patient. Ingest and the
        device gateways write it, the alert service reads it: apart from the detectors' alerts topic."""
        return f"{self.prefix}device-alarms"

    @property
    def state(self) -> str:
        """Compacted per-patient detector state, keyed by patient."""
        return f"{self.prefix}detector-state"

    @property
    def vitals(self) -> str:
        """Per-patient vitals snapshots (latest values, scores, staleness) for the live feed, keyed by patient."""
        return f"{self.prefix}vitals"

    @property
    def limits(self) -> str:
        """Compacted per-patient alarm-limit overrides (who changed them and why), keyed by patient."""
        return f"{self.prefix}limits"

    @property
    def registry(self) -> str:
        """Compacted device-to-patient assignments (admit, assign, discharge)."""
        return f"{self.prefix}registry"
