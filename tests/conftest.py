"""Shared fixtures: the real Kafka and InfluxDB, started once per test session by the project's scripts."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from wardwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"the shared data folder is missing at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def services():
    """Real Kafka (KRaft) and InfluxDB processes on free loopback ports, stopped at the end."""
    from devservices import start_services

    svc = start_services()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def settings(services, tmp_path) -> Settings:
    """Settings pointing at the real servers, with a topic prefix and database of this test's own.

    Connects as the Kafka admin (the ACLs are for the default prefix); tests/security uses the
    service principals."""
    tag = uuid.uuid4().hex[:8]
    services.influx.create_database(f"ww_{tag}")
    return Settings(
        backend="kafka",
        **services.kafka.client_settings("admin"),
        topic_prefix=f"t{tag}.",
        influx_url=services.influx.url,
        influx_token=services.influx.token,
        influx_bucket=f"ww_{tag}/autogen",
        data_dir=tmp_path / "data",
        readings_partitions=3,
        consumer_group=f"g{tag}",
    )
