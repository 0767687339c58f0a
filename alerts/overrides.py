"""Each patient's current limits override, as last published on the limits topic by this service.

The detector engine replaces a patient's override with every limits message, so a disable must be
published together with the limits in force (and a limit change with the disables still running);
this small table is where the service remembers them across restarts.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson


class Overrides:
    def __init__(self, path: Path | str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS overrides (patient TEXT PRIMARY KEY, limits TEXT NOT NULL)")

    def get(self, patient: str) -> dict:
        with self._lock:
            row = self._db.execute("SELECT limits FROM overrides WHERE patient=?", (patient,)).fetchone()
        return orjson.loads(row[0]) if row else {}

    def put(self, patient: str, limits: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO overrides VALUES (?, ?)", (patient, orjson.dumps(limits).decode()))
