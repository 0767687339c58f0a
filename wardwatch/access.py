"""Who may do what: one table of every HTTP route and websocket message, and the one check of it.

Services never compare roles themselves; they name the action and, for ward-scoped actions, the
ward of the patient concerned. The ward is always checked against the *principal's* wards (the
token's), never against what a socket subscribed to. The README's Access section is rendered from
this table (``render_markdown``), so the documentation cannot drift from what is enforced.
"""

from __future__ import annotations

from dataclasses import dataclass

from .auth import Forbidden, Principal, Role, TokenStore, Unauthorized

STAFF = frozenset({Role.nurse, Role.clinician, Role.admin})
PRESCRIBERS = frozenset({Role.clinician, Role.admin})
ADMIN = frozenset({Role.admin})
GATEWAYS = frozenset({Role.gateway, Role.admin})


@dataclass(frozen=True)
class Action:
    name: str
    service: str  # "alerts" or "ingest"
    surface: str  # "GET /path", "POST /path" or "ws {type}"
    roles: frozenset[Role] | None  # None: open, no token needed (pages, health probes, the API description)
    ward_scoped: bool = False
    note: str = ""

    @property
    def is_open(self) -> bool:
        return self.roles is None


TABLE: tuple[Action, ...] = (
    # Alert service, HTTP
    Action("pages", "alerts", "GET /, /nurse, /history, /static/*, /alarm-texts.json", None,
           note="static pages only; every patient datum comes over the socket or the API"),
    Action("healthz", "alerts", "GET /healthz", None, note="health probes: status only, nothing about patients"),
    Action("metrics", "alerts", "GET /metrics", ADMIN),
    Action("history", "alerts", "GET /api/history", STAFF, True),
    Action("history.csv", "alerts", "GET /api/history.csv", STAFF, True),
    Action("history.fhir", "alerts", "GET /api/history.fhir", STAFF, True),
    Action("audit", "alerts", "GET /api/audit", STAFF, True, "a ward-scoped token names a patient of its wards"),
    # Alert service, websocket /ws
    Action("auth", "alerts", "ws auth", STAFF, note="the first message on /ws"),
    Action("ping", "alerts", "ws ping", STAFF),
    Action("subscribe", "alerts", "ws subscribe", STAFF, True, "narrowed to the token's wards"),
    Action("ack", "alerts", "ws ack", STAFF, True, "another ward's alarm once it has escalated (audited cross-ward)"),
    Action("pause", "alerts", "ws pause", STAFF, True, "another ward's alarm once it has escalated (audited cross-ward)"),
    Action("resolve", "alerts", "ws resolve", STAFF, True,
           "another ward's alarm once it has escalated (audited cross-ward)"),
    Action("set_limits", "alerts", "ws set_limits", PRESCRIBERS, True, "known patients, physiological bounds"),
    Action("disable_alarm", "alerts", "ws disable_alarm", PRESCRIBERS, True, "reason and end time (at most 24 h)"),
    # HTTP ingest
    Action("ingest.json", "ingest", "POST /v1/readings", GATEWAYS),
    Action("ingest.fhir", "ingest", "POST /v1/fhir", GATEWAYS,
           note="FHIR answers when Accept names application/fhir+json"),
    Action("ingest.fhir.observation", "ingest", "POST /v1/fhir/Observation", GATEWAYS, note="FHIR create"),
    Action("ingest.fhir.message", "ingest", "POST /v1/fhir/$process-message", GATEWAYS, note="FHIR messaging"),
    Action("ingest.fhir.metadata", "ingest", "GET /v1/fhir/metadata", None, note="FHIR capabilities, no data"),
    Action("ingest.hl7v2", "ingest", "POST /v1/hl7v2", GATEWAYS,
           note="an HL7 ACK when Accept names x-application/hl7-v2+er7"),
    Action("ingest.admit", "ingest", "POST /v1/patients", ADMIN),
    Action("ingest.assign", "ingest", "POST /v1/patients/{patient}/devices", ADMIN),
    Action("ingest.discharge", "ingest", "POST /v1/patients/{patient}/discharge", ADMIN),
    Action("ingest.metrics", "ingest", "GET /metrics", ADMIN),
    Action("ingest.healthz", "ingest", "GET /healthz", None, note="health probes"),
    Action("ingest.openapi", "ingest", "GET /openapi.json", None, note="the API description, no data"),
    Action("detect.metrics", "detect", "GET :9108/metrics", ADMIN),
    Action("detect.healthz", "detect", "GET :9108/healthz", None, note="health probes: status only"),
)
ACTIONS: dict[str, Action] = {a.name: a for a in TABLE}
SOCKET_MESSAGES = frozenset(a.name for a in TABLE if a.surface.startswith("ws "))


def authorize(principal: Principal | None, action: str, ward: str | None = None, escalated: bool = False) -> bool:
    """Raise Unauthorized (401) or Forbidden (403) unless ``principal`` may do ``action`` on ``ward``.

    Returns True when allowed only because the alarm escalated beyond its ward (a cross-ward
    action, which the caller audits as such), else False.
    """
    rule = require_role(principal, action)
    if rule.is_open or not rule.ward_scoped or not principal.wards:
        return False
    if ward is None:
        raise Forbidden(f"{action} needs a patient of your wards")
    if ward in principal.wards:
        return False
    if escalated:
        return True
    raise Forbidden("not on your wards")


def require_role(principal: Principal | None, action: str) -> Action:
    """The role half of ``authorize``, for a request whose ward is known only after parsing it."""
    rule = ACTIONS[action]
    if rule.is_open:
        return rule
    if principal is None:
        raise Unauthorized("missing, invalid or revoked token")
    if principal.role not in rule.roles:
        allowed = ", ".join(r.value for r in Role if r in rule.roles)
        raise Forbidden(f"role {principal.role.value!r} may not use {action} ({allowed} only)")
    return rule


def check(tokens: TokenStore, token: str | None, action: str, ward: str | None = None) -> Principal | None:
    """Look the token up and authorize it; the principal (None for an open action without a token).
    An expired token raises Expired (a 401 saying so) from the lookup, whatever the action."""
    principal = tokens.lookup(token)
    authorize(principal, action, ward)
    return principal


def render_markdown() -> str:
    """The README's Access table."""
    rows = ["| service | route or message | action | roles | ward-scoped | note |", "|---|---|---|---|---|---|"]
    for a in TABLE:
        roles = "anyone" if a.roles is None else ", ".join(r.value for r in Role if r in a.roles)
        rows.append(f"| {a.service} | `{a.surface}` | {a.name} | {roles} | {'yes' if a.ward_scoped else 'no'} | {a.note} |")
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------ the documented exception: MLLP
#
# HL7 v2 over MLLP (ingest/mllp.py) has no login and no token: a monitor gateway opens a TCP
# connection and sends framed messages. So it is outside TABLE, and authorized here instead, per
# connection: the peer address must be in ``mllp_allowed_sources`` (loopback only by default) and,
# when ``mllp_tls_client_cafile`` is set, the peer must present a certificate that CA signed; its
# subject CN names the gateway principal (through ``mllp_tls_principals`` when that is not empty,
# and then only the CNs it lists are let in). What the connection may do is what ingest.hl7v2
# allows a gateway.
MLLP_ACTION = "ingest.hl7v2"


def mllp_principal(address: str | None, peercert: dict | None, allowed_sources, tls_required: bool,
                   principals: dict[str, str] | None = None) -> Principal:
    """The gateway principal of an MLLP connection, or Forbidden."""
    import ipaddress

    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        raise Forbidden("MLLP: the peer address is unknown") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    nets = [ipaddress.ip_network(s, strict=False) for s in allowed_sources]
    if not any(ip.version == n.version and ip in n for n in nets):
        raise Forbidden(f"MLLP: source {ip} is not in mllp_allowed_sources")
    name = f"mllp:{ip}"
    if tls_required:
        cn = None
        for rdn in (peercert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    cn = value
        if not cn:
            raise Unauthorized("MLLP: no client certificate")
        if principals:
            if cn not in principals:
                raise Forbidden(f"MLLP: client certificate {cn!r} is not mapped to a gateway")
            name = principals[cn]
        else:
            name = cn
    principal = Principal(name=name, role=Role.gateway, token_id=f"mllp:{name}")
    require_role(principal, MLLP_ACTION)
    return principal
