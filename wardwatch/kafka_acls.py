"""Who may do what on Kafka: one principal per service, least privilege, as ``kafka-acls`` arguments.

The plan is data, so the dev stack (:mod:`devservices`), operators (``kafka-acls.sh``, see
docs/operations.md) and the tests apply the same rules. Every pattern is PREFIXED: topic rules on
``<topic prefix><topic>`` and group rules on the group names, so one plan covers every instance of
a service and any topic prefix it is rendered for.

Topics are created by the admin principal (``ensure_topics`` with admin credentials); services get
Describe on the project's topics so that their own ``ensure_topics`` finds them, never Create.
"""

from __future__ import annotations

from dataclasses import dataclass

from .topics import Topics

SERVICES = ("gateway", "ingest", "detector", "alerts")
# The alert services' copier group is f"wardwatch-alerts-{topic prefix}copier" (alerts/alertlog.py).
ALERTS_GROUP_PREFIX = "wardwatch-alerts-"


@dataclass(frozen=True)
class Grant:
    """Allow every principal each operation on each resource (what one ``kafka-acls --add`` does)."""

    principals: tuple[str, ...]
    operations: tuple[str, ...]
    topics: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """``kafka-acls`` (AclCommand) arguments, after the connection options."""
        return ["--add", "--resource-pattern-type", "prefixed", *self.rule_args()]

    def rule_args(self) -> list[str]:
        """The principals, operations and resources alone."""
        out = [a for p in self.principals for a in ("--allow-principal", f"User:{p}")]
        out += [a for op in self.operations for a in ("--operation", op)]
        out += [a for t in self.topics for a in ("--topic", t)]
        out += [a for g in self.groups for a in ("--group", g)]
        return out


def service_grants(topics: Topics, detector_group: str) -> list[Grant]:
    """The ACLs of the four service principals for this topic prefix and detector consumer group."""
    t = topics
    return [
        Grant(SERVICES, ("Describe",), topics=(t.prefix,)),
        # Readings, and monitors' own alarms, come from device gateways and the ingest; both dead-letter
        # what they reject.
        Grant(("gateway", "ingest"), ("Write",), topics=(t.readings, t.deadletter, t.device_alarms)),
        Grant(("ingest",), ("Write",), topics=(t.registry,)),  # admit, assign, discharge
        Grant(("gateway", "ingest", "alerts"), ("Read",), topics=(t.registry,)),
        Grant(("detector",), ("Read",), topics=(t.readings, t.state, t.limits), groups=(detector_group,)),
        # Only the detectors raise and clear alarms.
        Grant(("detector",), ("Write",), topics=(t.alerts, t.state, t.vitals, t.deadletter)),
        Grant(("alerts",), ("Read",), topics=(t.alerts, t.actions, t.vitals, t.device_alarms, t.alert_log, t.limits),
              groups=(ALERTS_GROUP_PREFIX,)),
        # Only the alert service records what nurses did (ack, pause, resolve) and escalations; its
        # instances share one log of alarms, actions and audit rows.
        Grant(("alerts",), ("Write",), topics=(t.actions, t.limits, t.alert_log)),
        # Tokens are written by the admin (``wardwatch token``) only; the services read them.
        Grant(("ingest", "detector", "alerts"), ("Read",), topics=(t.tokens,)),
        # The alert service watches the detector group's committed offsets ("monitoring stopped").
        Grant(("alerts",), ("Describe",), groups=(detector_group,)),
    ]
