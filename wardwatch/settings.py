"""One settings object, read from the environment (prefix ``WARDWATCH_``) and an optional ``.env``."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDWATCH_", env_file=".env", extra="ignore")

    # Which bus and store the services use: "embedded" runs everything in one process with an
    # in-memory bus and an embedded store (the demo); "kafka" uses Apache Kafka and InfluxDB.
    backend: Literal["embedded", "kafka"] = "kafka"
    # uvloop where installed (auto), required (uvloop), or asyncio's own loop: wardwatch/eventloop.py.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Kafka client security. PLAINTEXT only suits a private loopback broker: anyone who reaches an
    # unauthenticated broker can produce any event (docs/operations.md, "Running it securely").
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-256"
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None  # client certificate, for brokers that require mutual TLS
    kafka_ssl_keyfile: Path | None = None
    topic_prefix: str = "wardwatch."
    readings_partitions: int = Field(6, ge=1)
    consumer_group: str = "wardwatch-detectors"

    influx_url: str = "http://127.0.0.1:8086"
    # InfluxDB 1.8 (native path) takes "user:password" and "database/retention"; 2.x a real token and bucket.
    influx_token: str = "wardwatch:wardwatch"
    influx_org: str = "wardwatch"
    influx_bucket: str = "wardwatch/autogen"
    influx_batch_size: int = Field(5000, ge=1)

    data_dir: Path = Path(".wardwatch")

    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8080
    alerts_host: str = "127.0.0.1"
    alerts_port: int = 8765
    detect_metrics_port: int = 9108
    # Detector worker (docs/detectors.md, "The worker's loop"): the state checkpoint (and offset
    # commit) every this many seconds, in the background; a restart replays at most about this much.
    detect_checkpoint_s: float = Field(5.0, gt=0)
    # Batches whose events and stores may be in flight at once before the loop waits (back-pressure).
    detect_max_in_flight: int = Field(4, ge=1)

    # Validation windows for device timestamps.
    max_future_s: float = 120.0
    max_age_s: float = 7 * 24 * 3600.0
    # Reject readings of patients who are not admitted (HTTP ingest and the gateway client).
    enforce_registry: bool = True
    # Producer backlog (readings) above which the HTTP endpoint answers 429 instead of buffering.
    ingest_max_backlog: int = 200_000
    # Limits of the HTTP ingest (docs/ingest.md, "Limits and hardening").
    ingest_max_body_bytes: int = Field(10 << 20, ge=1024)
    ingest_max_items: int = Field(50_000, ge=1)  # readings or resources per request
    ingest_header_timeout_s: float = Field(10.0, gt=0)  # a request's headers must arrive within this
    ingest_body_timeout_s: float = Field(30.0, gt=0)  # and its body within this
    ingest_keepalive_s: int = Field(5, ge=1)  # an idle kept-alive connection is closed after this
    ingest_max_header_bytes: int = Field(16 << 10, ge=1024)
    ingest_offload_bytes: int = Field(64 << 10, ge=0)  # larger bodies are parsed off the event loop
    hl7_max_segments: int = Field(5_000, ge=1)  # per request
    hl7_max_repetitions: int = Field(10_000, ge=1)  # "~" per request
    hl7_max_components: int = Field(100_000, ge=1)  # "^" and "&" per request
    fhir_max_entries: int = Field(10_000, ge=1)  # per Bundle
    # HL7 v2 (docs/ingest.md, "HL7 v2"): an operator's code table (TOML or JSON) merged over the
    # shipped wardwatch/data/hl7_codes.toml, and the zone of device times written without one
    # (when MSH-7 has none either): an IANA name such as "Europe/Berlin".
    hl7_code_table: Path | None = None
    hl7_local_timezone: str = "UTC"

    # MLLP listener for HL7 v2 (ingest/mllp.py), started by `wardwatch ingest`; 0/None = off. MLLP
    # has no login: the source addresses allowed (CIDRs, loopback only by default) and, with TLS, a
    # client certificate signed by mllp_tls_client_cafile are the authorization (wardwatch/access.py).
    mllp_host: str = "127.0.0.1"
    mllp_port: int | None = None
    mllp_allowed_sources: list[str] = ["127.0.0.0/8", "::1/128"]
    mllp_max_frame_bytes: int = Field(1 << 20, ge=1024)  # one framed message
    mllp_idle_timeout_s: float = Field(300.0, gt=0)  # a connection silent this long is closed
    mllp_frame_timeout_s: float = Field(30.0, gt=0)  # a started frame must end within this
    mllp_max_connections: int = Field(256, ge=1)
    mllp_tls_certfile: Path | None = None  # server certificate and key: TLS on when both are set
    mllp_tls_keyfile: Path | None = None
    mllp_tls_client_cafile: Path | None = None  # when set, clients must present a certificate it signed
    # Client certificate subject CN -> gateway principal name; empty: any certificate the CA signed,
    # named by its CN.
    mllp_tls_principals: dict[str, str] = {}
    token_cache_size: int = Field(4096, ge=1)  # token lookups remembered, for valid and for invalid tokens each

    # Alarm handling.
    stale_after_s: float = 60.0
    audio_pause_s: float = 120.0
    escalate_after_s: float = 120.0
    # Readings waiting and no detector progress for this long = "monitoring stopped" on every page.
    monitor_stall_s: float = Field(30.0, gt=0)
    # The detectors this many seconds behind what waits (at their current rate) = "monitoring delayed".
    monitor_behind_s: float = Field(60.0, gt=0)

    def kafka_env(self) -> dict[str, str]:
        """The ``WARDWATCH_*`` variables that point a child process's Kafka clients where ours point."""
        env = {"WARDWATCH_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
               "WARDWATCH_KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
               "WARDWATCH_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
               "WARDWATCH_KAFKA_USERNAME": self.kafka_username,
               "WARDWATCH_KAFKA_PASSWORD": self.kafka_password.get_secret_value()}
        for name in ("cafile", "certfile", "keyfile"):
            if (path := getattr(self, f"kafka_ssl_{name}")) is not None:
                env[f"WARDWATCH_KAFKA_SSL_{name.upper()}"] = str(path)
        return env

    @property
    def detect_processes(self) -> int:
        """``wardwatch detect``'s default: a worker process per core, never more than there are
        readings partitions to share (an extra member of the group idles)."""
        return max(1, min(os.cpu_count() or 1, self.readings_partitions))

    @property
    def tokens_path(self) -> Path:
        return self.data_dir / "tokens.sqlite3"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.sqlite3"


@lru_cache
def get_settings() -> Settings:
    return Settings()
