"""SASL_SSL end to end: a broker with a TLS listener signed by a test CA, and the clients' TLS settings."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError

from devservices import KafkaServer
from wardwatch.kafka import make_consumer, make_producer
from wardwatch.settings import Settings

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl to make the test certificates")]


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory):
    """A broker whose certificate (for 127.0.0.1) is signed by a CA of this test's own."""
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=wardwatch-test-ca", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "1", "-extfile", "san.ext", cwd=d)
    (d / "keystore.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    kafka = KafkaServer(tls_keystore=d / "keystore.pem", tls_ca=d / "ca.pem")
    try:
        yield kafka.start()
    finally:
        kafka.stop()
        shutil.rmtree(kafka.workdir, ignore_errors=True)


async def test_sasl_ssl_client_produces_and_consumes(tls_kafka):
    settings = Settings(**tls_kafka.client_settings("admin"))
    assert settings.kafka_security_protocol == "SASL_SSL"
    topic, value = f"tls-{uuid.uuid4().hex[:6]}", uuid.uuid4().bytes
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = make_consumer(settings, topic)
    await consumer.start()
    try:
        got = [m.value for msgs in (await consumer.getmany(timeout_ms=10_000)).values() for m in msgs]
    finally:
        await consumer.stop()
    assert got == [value]


@pytest.mark.parametrize("change", [{"kafka_ssl_cafile": None}, {"kafka_security_protocol": "SASL_PLAINTEXT"}],
                         ids=["broker-cert-not-trusted", "no-tls"])
async def test_client_without_the_right_tls_cannot_connect(tls_kafka, change):
    producer = make_producer(Settings(**(tls_kafka.client_settings("admin") | change)), request_timeout_ms=3000)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()
