"""The Kafka security settings reach every client the same way (no broker needed)."""

from __future__ import annotations

import ssl

import certifi

from wardwatch.kafka import librdkafka_options, security_options
from wardwatch.settings import Settings


def test_plaintext_sends_no_credentials():
    opts = security_options(Settings(kafka_username="u", kafka_password="p"))
    assert opts["security_protocol"] == "PLAINTEXT"
    assert "sasl_plain_password" not in opts and "ssl_context" not in opts


def test_sasl_ssl_has_scram_credentials_and_a_verifying_tls_context():
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                        kafka_username="detector", kafka_password="s3cret", kafka_ssl_cafile=certifi.where())
    opts = security_options(settings)
    assert (opts["sasl_mechanism"], opts["sasl_plain_username"], opts["sasl_plain_password"]) == \
        ("SCRAM-SHA-512", "detector", "s3cret")
    assert isinstance(opts["ssl_context"], ssl.SSLContext) and opts["ssl_context"].verify_mode is ssl.CERT_REQUIRED
    assert librdkafka_options(settings) == {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512",
                                            "sasl.username": "detector", "sasl.password": "s3cret",
                                            "ssl.ca.location": certifi.where()}


def test_the_password_stays_out_of_reprs_and_reaches_child_processes():
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_username="alerts", kafka_password="s3cret")
    assert "s3cret" not in repr(settings)
    assert settings.kafka_env()["WARDWATCH_KAFKA_PASSWORD"] == "s3cret"
    assert Settings(**{k.removeprefix("WARDWATCH_").lower(): v for k, v in settings.kafka_env().items()}) \
        .kafka_password.get_secret_value() == "s3cret"
