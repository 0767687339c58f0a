"""InfluxDB 1.8 as a plain process on loopback, auth off, serving the 2.x-compatible API."""

from __future__ import annotations

import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .install import influxd_binary
from .process import Proc, free_port, http_ok, wait_until


@dataclass
class InfluxServer(Proc):
    name: str = "influxd"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ww-influx-")))
    port: int = 0
    rpc_port: int = 0
    database: str = "wardwatch"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return "wardwatch:wardwatch"  # auth is off on the test server; the v1 compat token is user:password

    @property
    def bucket(self) -> str:
        return f"{self.database}/autogen"

    def _config(self) -> Path:
        d = self.workdir
        path = d / "influxdb.conf"
        path.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d / 'meta'}"
[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[coordinator]
  write-timeout = "30s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false
  flux-enabled = true
  max-body-size = 0
  max-concurrent-write-limit = 0
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
""")
        return path

    def start(self, timeout: float = 60.0) -> "InfluxServer":
        binary = influxd_binary()
        self.port = self.port or free_port()
        self.rpc_port = self.rpc_port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._spawn([str(binary), "run", "-config", str(self._config())])
        wait_until("InfluxDB", lambda: http_ok(f"{self.url}/ping"), self, timeout)
        self.create_database(self.database)
        return self

    def create_database(self, name: str) -> None:
        data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
        urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10).read()
