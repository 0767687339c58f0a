"""An embedded store in place of InfluxDB for the one-process demo: SQLite, same write and read API.

It takes the same line protocol the services write to InfluxDB and answers ``query_series`` the
way the Flux query does (windows aligned to the epoch, mean per window, stamped with the window's
end), so history pages and exports work unchanged. It is for a demo and a single ward, not for
production volumes: there, use InfluxDB.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Sequence

from .store import StoreHealth


def _split_unescaped(s: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes and not preceded by a backslash."""
    out, cur, quoted, i = [], [], False, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(s: str) -> str:
    return s.replace("\\,", ",").replace("\\=", "=").replace("\\ ", " ")


def _field(raw: str) -> Any:
    if raw.startswith('"'):
        return raw[1:-1].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
    if raw in ("true", "false"):
        return raw == "true"
    if raw.endswith("i"):
        return int(raw[:-1])
    return float(raw)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    """measurement, tags, fields, timestamp (ms) of one line of protocol written by lineprotocol.line."""
    head, fields_part, ts = (lambda p: (p[0], " ".join(p[1:-1]), p[-1]))(_split_unescaped(line, " "))
    parts = _split_unescaped(head, ",")
    measurement = _unescape(parts[0])
    tags = dict(_unescape(p).split("=", 1) for p in parts[1:])
    fields = {}
    for kv in _split_unescaped(fields_part, ","):
        k, _, v = kv.partition("=")
        fields[_unescape(k)] = _field(v)
    return measurement, tags, fields, int(ts)


class EmbeddedStore:
    """SQLite behind the InfluxStore interface (write_lines, query_series, ping, close, health)."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL") if str(path) != ":memory:" else None
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS points (measurement TEXT, patient TEXT, tags TEXT, ts INTEGER,"
            " fields TEXT, PRIMARY KEY (measurement, tags, ts))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_patient ON points (measurement, patient, ts)")
        self._lock = threading.Lock()
        self.health = StoreHealth()

    def ensure_bucket(self) -> None:
        return None

    def write_lines_sync(self, lines: Sequence[str]) -> None:
        rows = []
        for ln in lines:
            m, tags, fields, ts = parse_line(ln)
            rows.append((m, tags.get("patient", ""), json.dumps(tags, sort_keys=True), ts, json.dumps(fields)))
        with self._lock:
            self._db.execute("BEGIN")
            for m, patient, tags, ts, fields in rows:
                # Same measurement + tag set + time is the same point: fields merge, as in InfluxDB.
                old = self._db.execute("SELECT fields FROM points WHERE measurement=? AND tags=? AND ts=?",
                                       (m, tags, ts)).fetchone()
                if old:
                    fields = json.dumps(json.loads(old[0]) | json.loads(fields))
                self._db.execute("INSERT OR REPLACE INTO points VALUES (?,?,?,?,?)", (m, patient, tags, ts, fields))
            self._db.execute("COMMIT")
        self.health.points_written += len(rows)

    async def write_lines(self, lines: Sequence[str], **_: Any) -> None:
        await asyncio.to_thread(self.write_lines_sync, lines)

    def query_series_sync(self, measurement: str, patient: str, start_ms: int, stop_ms: int,
                          every_ms: int | None = None, fields: Sequence[str] | None = None,
                          tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT tags, ts, fields FROM points WHERE measurement=? AND patient=? AND ts>=? AND ts<? ORDER BY ts",
                (measurement, patient, start_ms, stop_ms)).fetchall()
        series: dict[tuple, list[tuple[int, Any]]] = {}
        for tag_json, ts, field_json in rows:
            t = json.loads(tag_json)
            if tags and any(t.get(k) != v for k, v in tags.items()):
                continue
            for f, v in json.loads(field_json).items():
                if fields and f not in fields:
                    continue
                series.setdefault((tuple(sorted(t.items())), f), []).append((ts, v))
        out = []
        for (tagitems, f), points in series.items():
            extra = dict(tagitems)
            if every_ms:
                windows: dict[int, list[float]] = {}
                for ts, v in points:
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        windows.setdefault((ts // every_ms + 1) * every_ms, []).append(float(v))
                for end, vals in sorted(windows.items()):
                    out.append({"time": min(end, stop_ms), "field": f, "value": sum(vals) / len(vals), **extra})
            else:
                out.extend({"time": ts, "field": f, "value": v, **extra} for ts, v in points)
        out.sort(key=lambda r: r["time"])
        return out

    async def query_series(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.query_series_sync, *args, **kwargs)

    async def query(self, flux: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError("the embedded store answers query_series only; raw Flux needs InfluxDB")

    def count(self, measurement: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM points WHERE measurement=?", (measurement,)).fetchone()[0]

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_store(settings):
    """InfluxDB, or the embedded store when the settings ask for the one-process backend."""
    if settings.backend == "embedded":
        global _embedded
        if _embedded is None:
            _embedded = EmbeddedStore(settings.data_dir / "embedded-store.sqlite3")
        return _embedded
    from .store import InfluxStore

    return InfluxStore(settings)


_embedded: EmbeddedStore | None = None
