"""Drift of the early warning in the live worker, as Prometheus metrics: the distribution of the
learned risk at its hourly predictions, and the alert episodes per patient-day.

An operator compares them with the model card (docs/early-warning.md): on held-out CinC patients
the alarm policy was chosen for at most 0.7 episodes per patient-day, and the risk's distribution
there is the reliability table ``wardwatch evaluate`` prints. A ward whose patients, devices or
charting differ from the training data shows it here first: the risk histogram shifts, or the
episode rate climbs, before anyone has counted false alarms by hand.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from wardwatch.models import AlertEventType, AlertKind, Priority

RISK_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


class EarlyWarningDrift:
    """The metrics, and :meth:`observe` to update them after each processed batch.

    A patient-hour is one hourly prediction of the learned risk (it predicts once per patient and
    hour of reading time), so episodes per patient-day = alert episodes raised / (patient-hours / 24),
    over the worker's lifetime. An alert episode is a medium- or high-priority physiological alarm
    raised (the learned risk's or a limit's), as ``wardwatch score`` and ``wardwatch evaluate`` count
    them. A batch the worker rolls back and splits is counted again: drift, not accounting."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.risk = Histogram("wardwatch_early_warning_risk", "the learned risk at each hourly prediction",
                              buckets=RISK_BUCKETS, registry=registry)
        self.patient_hours = Counter("wardwatch_early_warning_patient_hours_total",
                                     "patient-hours scored by the learned risk", registry=registry)
        self.episodes = Counter("wardwatch_early_warning_alert_episodes_total",
                                "medium or high physiological alarms raised", ["source"], registry=registry)
        self.rate = Gauge("wardwatch_early_warning_alert_episodes_per_patient_day",
                          "alert episodes raised per patient-day scored, since the worker started", registry=registry)
        self._hours = 0
        self._episodes = 0

    def observe(self, engine, out) -> None:
        """New risk predictions of ``engine``'s risk stage and the alarms raised in ``out`` (an EngineOutput)."""
        for stage in engine.stages:
            drain = getattr(stage, "drain_predictions", None)
            for p in (drain() if drain else ()):
                for x in p.tolist():
                    self.risk.observe(x)
                self.patient_hours.inc(len(p))
                self._hours += len(p)
        for e in out.events:
            a = e.alert
            if (e.type is AlertEventType.raised and a.kind is AlertKind.physiological
                    and a.priority in (Priority.medium, Priority.high)):
                self.episodes.labels("early_warning" if a.condition == "early_warning" else "limit").inc()
                self._episodes += 1
        if self._hours:
            self.rate.set(self._episodes / (self._hours / 24.0))
