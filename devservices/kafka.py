"""Apache Kafka (KRaft) as a plain process, run as production should, scaled down.

SASL/SCRAM on a loopback listener, the StandardAuthorizer denying what no ACL allows, one principal
per service (admin, gateway, ingest, detector, alerts) with the ACLs of :mod:`wardwatch.kafka_acls`.
Passwords are random per server; the listener can have TLS (SASL_SSL) with a given certificate
(tests/security/test_kafka_tls.py).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from wardwatch.kafka_acls import SERVICES
from wardwatch.settings import Settings

from . import tools
from .install import kafka_libs, kafka_tools_classpath
from .process import Proc, die_with_parent, free_port, run_async, wait_until

MECHANISM = "SCRAM-SHA-256"
PRINCIPALS = ("admin", *SERVICES)


@dataclass
class KafkaServer(Proc):
    name: str = "kafka"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ww-kafka-")))
    port: int = 0
    controller_port: int = 0
    heap: str = "512m"
    passwords: dict[str, str] = field(default_factory=lambda: {p: secrets.token_urlsafe(18) for p in PRINCIPALS})
    # TLS on the client listener (SASL_SSL): a PEM file with the broker's key and certificate chain,
    # and the CA that signed it. Without them the listener is SASL_PLAINTEXT, on loopback.
    tls_keystore: Path | None = None
    tls_ca: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def protocol(self) -> str:
        return "SASL_SSL" if self.tls_keystore else "SASL_PLAINTEXT"

    def client_settings(self, principal: str = "admin") -> dict:
        """``Settings`` fields for a client of this broker authenticating as ``principal``."""
        tls = dict(kafka_ssl_cafile=self.tls_ca) if self.tls_keystore else {}
        return dict(kafka_bootstrap=self.bootstrap, kafka_security_protocol=self.protocol,
                    kafka_sasl_mechanism=MECHANISM, kafka_username=principal,
                    kafka_password=self.passwords[principal], **tls)

    def _tls_props(self) -> list[str]:
        if not self.tls_keystore:
            return []
        return ["ssl.keystore.type=PEM", f"ssl.keystore.location={self.tls_keystore}",
                "ssl.truststore.type=PEM", f"ssl.truststore.location={self.tls_ca}"]

    def _props(self) -> Path:
        path = self.workdir / "server.properties"
        path.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners={self.protocol}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={self.protocol}://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={self.protocol}",
            f"listener.security.protocol.map={self.protocol}:{self.protocol},CONTROLLER:PLAINTEXT",
            *self._tls_props(),
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.{self.protocol.lower()}.{MECHANISM.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{self.passwords["admin"]}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            # The controller listener is PLAINTEXT and authenticates as ANONYMOUS: loopback only.
            "super.users=User:admin;User:ANONYMOUS",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "num.partitions=6",
            "auto.create.topics.enable=true",
            "log.retention.hours=48",
            "message.max.bytes=10485760",
            f"log.dirs={self.workdir / 'data'}",
        ]) + "\n")
        return path

    def _command_config(self) -> Path:
        """Admin client properties for the Java tools (AclCommand)."""
        path = self.workdir / "admin.properties"
        path.write_text("\n".join([
            f"security.protocol={self.protocol}",
            f"sasl.mechanism={MECHANISM}",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{self.passwords["admin"]}";',
            *(["ssl.truststore.type=PEM", f"ssl.truststore.location={self.tls_ca}"] if self.tls_keystore else []),
        ]) + "\n")
        path.chmod(0o600)
        return path

    def start(self, timeout: float = 90.0) -> "KafkaServer":
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Format (first time only, with every principal's SCRAM credentials) and start the broker."""
        libs = kafka_libs()
        java = tools.java()
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        props = self._props()
        cp = f"{libs}/*"
        log4j = f"-Dlog4j2.configurationFile={libs.parent / 'log4j2.xml'}"
        if not (self.workdir / "data" / "meta.properties").exists():
            users = [a for name, pw in self.passwords.items()
                     for a in ("--add-scram", f"{MECHANISM}=[name={name},password={pw}]")]
            subprocess.run([java, log4j, "-cp", cp, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                            "-c", str(props), *users], check=True, capture_output=True)
        self._spawn([java, f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC", log4j,
                     "-cp", cp, "kafka.Kafka", str(props)])

    def wait_ready(self, timeout: float = 90.0) -> None:
        wait_until("Kafka", lambda: kafka_ready(Settings(**self.client_settings())), self, timeout)

    def add_acls(self, grants) -> subprocess.Popen:
        """Start adding ACLs with AclCommand, all in one JVM; the caller waits for the process."""
        argv = [tools.java(), "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", kafka_tools_classpath(), "AclBatch"]
        common = ["--bootstrap-server", self.bootstrap, "--command-config", str(self._command_config())]
        commands = self.workdir / "acls.txt"
        commands.write_text("".join(" ".join(common + g.args()) + "\n" for g in grants))
        with open(commands) as stdin:
            return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    preexec_fn=die_with_parent)

    def restart(self) -> None:
        """Stop and start on the same ports and data (a broker restart)."""
        self.stop()
        self.start()


def _cluster_id() -> str:
    """A KRaft cluster id as ``StorageTool random-uuid`` prints it (16 random bytes, URL-safe base64),
    made here to save a JVM start; like Kafka's, never starting with "-" (it would read as an option)."""
    while (cid := secrets.token_urlsafe(16))[0] == "-":
        pass
    return cid


def kafka_ready(settings: Settings) -> bool:
    """True once the broker answers a metadata request (with its own, short-lived client)."""
    import asyncio

    from wardwatch.kafka import make_admin

    async def probe() -> bool:
        admin = make_admin(settings, request_timeout_ms=2000)
        try:
            await asyncio.wait_for(admin.start(), 3)
            await asyncio.wait_for(admin.list_topics(), 3)
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    host, port = settings.kafka_bootstrap.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex((host, int(port))) != 0:
            return False
    return run_async(probe())
