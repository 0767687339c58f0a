"""Every Starlette route of every service is a row of the access table, and every HTTP row a route."""

from __future__ import annotations

import re

from alerts import web as alerts_web
from detectors import health
from ingest import server
from wardwatch import access


def surfaces(service: str) -> set[tuple[str, str]]:
    out = set()
    for a in access.TABLE:
        if a.service == service and not a.surface.startswith("ws "):
            method, paths = a.surface.split(" ", 1)
            out |= {(method, re.sub(r"^:\d+", "", p)) for p in paths.split(", ")}
    return out


def routes(table, api: dict | None = None) -> set[tuple[str, str]]:
    out = set()
    for r in table:
        for method in r.methods - {"HEAD"}:
            if r.path == "/api/{rest:path}":  # one handler for the API, by path
                out |= {(method, p) for p in api}
            else:
                out.add((method, r.path.replace("{name:path}", "*")))
    return out


def test_ingest_routes_are_the_table():
    assert routes(server.ROUTES) == surfaces("ingest")


def test_alert_routes_are_the_table():
    assert routes(alerts_web.ROUTES, alerts_web.API) == surfaces("alerts")
    assert all(access.ACTIONS[action].service == "alerts" for action in alerts_web.API.values())


def test_detector_routes_are_the_table():
    assert routes(health.ROUTES) == surfaces("detect")


def test_every_documented_ingest_route_names_its_own_action():
    for r in server.ROUTES:
        doc = r.endpoint.__openapi__
        assert access.ACTIONS[doc.action].surface == f"{min(r.methods - {'HEAD'})} {r.path}", r.path
