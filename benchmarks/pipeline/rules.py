"""The alarm rules every build of the benchmark runs, in their plain per-message form.

Peers (raw pass-through aside) implement exactly these: a limit crossed and held for a condition
delay (in reading time) raises one alarm; going back inside the limit clears it.
"""

from __future__ import annotations

DELAY_MS = 15_000
LIMITS = {  # metric: (low, high); None = no limit on that side
    "spo2": (90.0, None),
    "heart_rate": (40.0, 130.0),
    "resp_rate": (8.0, 24.0),
}


class PatientRules:
    """Per-patient state as plain dicts: the obvious implementation the vectorised engine is compared with."""

    def __init__(self) -> None:
        self.onset: dict[str, int] = {}
        self.active: set[str] = set()

    def to_dict(self) -> dict:
        return {"onset": self.onset, "active": sorted(self.active)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "PatientRules":
        r = cls()
        if d:
            r.onset = dict(d.get("onset", {}))
            r.active = set(d.get("active", []))
        return r

    def update(self, metric: str, value: float, ts: int) -> str | None:
        """Returns "raised:<metric>" or "cleared:<metric>" when the alarm state changes."""
        limits = LIMITS.get(metric)
        if limits is None:
            return None
        low, high = limits
        out = (low is not None and value < low) or (high is not None and value > high)
        if out:
            onset = self.onset.setdefault(metric, ts)
            if metric not in self.active and ts - onset >= DELAY_MS:
                self.active.add(metric)
                return f"raised:{metric}"
        else:
            self.onset.pop(metric, None)
            if metric in self.active:
                self.active.discard(metric)
                return f"cleared:{metric}"
        return None
