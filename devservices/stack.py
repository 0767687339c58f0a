"""Kafka and InfluxDB together, as the tests and benchmarks use them."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from wardwatch.kafka_acls import service_grants
from wardwatch.settings import Settings
from wardwatch.topics import Topics

from .influx import InfluxServer
from .kafka import KafkaServer
from .process import run_async


@dataclass
class Services:
    kafka: KafkaServer
    influx: InfluxServer

    def env(self, principal: str = "admin") -> dict[str, str]:
        """Every ``WARDWATCH_*`` setting a client of these servers needs, authenticating as ``principal``
        (admin, or one of the services: each may do only what :mod:`wardwatch.kafka_acls` allows)."""
        return {
            "WARDWATCH_BACKEND": "kafka",
            **{f"WARDWATCH_{k.upper()}": v for k, v in self.kafka.client_settings(principal).items()},
            "WARDWATCH_INFLUX_URL": self.influx.url,
            "WARDWATCH_INFLUX_TOKEN": self.influx.token,
            "WARDWATCH_INFLUX_BUCKET": self.influx.bucket,
        }

    def stop(self) -> None:
        self.kafka.stop()
        self.influx.stop()
        for p in (self.kafka, self.influx):
            shutil.rmtree(p.workdir, ignore_errors=True)


def start_services() -> Services:
    """Kafka (with its principals, ACLs and the configured prefix's topics) and InfluxDB.

    InfluxDB starts while Kafka boots, and the ACLs go in while the topics are created (measured
    fastest on two cores: a third JVM during Kafka's boot slowed all of them)."""
    from wardwatch.kafka import ensure_topics

    base = Settings()  # the topic prefix and detector group the ACLs are for
    kafka = KafkaServer()
    influx = InfluxServer()
    try:
        kafka.launch()
        influx.start()
        kafka.wait_ready()
        acls = kafka.add_acls(service_grants(Topics(base.topic_prefix), base.consumer_group))
        # Services may not create topics (no Create ACL): the admin makes them for the service principals.
        run_async(ensure_topics(Settings(topic_prefix=base.topic_prefix, readings_partitions=base.readings_partitions,
                                          **kafka.client_settings())))
        out, _ = acls.communicate(timeout=120)
        if acls.returncode:
            raise RuntimeError(f"adding Kafka ACLs failed:\n{out[-3000:]}")
    except BaseException:
        kafka.stop()
        influx.stop()
        raise
    return Services(kafka, influx)


def bench_services() -> Services | None:
    """For benchmarks: None when ``WARDWATCH_KAFKA_BOOTSTRAP`` names running servers, else servers of
    our own, started on this (main) thread and exported to the environment; the caller stops them."""
    if os.environ.get("WARDWATCH_KAFKA_BOOTSTRAP"):
        return None
    services = start_services()
    os.environ.update(services.env())
    return services
