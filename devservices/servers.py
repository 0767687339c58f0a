"""Install and run the real Apache Kafka (KRaft) and InfluxDB as plain processes, for tests and benches.

Machines without Docker still need the real servers. Kafka comes from Maven Central jars, InfluxDB
1.8 (which serves the ``/api/v2`` write and Flux query API that influxdb-client uses) is built with
``go install``. Both are cached under ``$WARDWATCH_CACHE`` (default ``~/.cache/wardwatch``), outside
the checkout, so a second run starts in seconds.

Kafka runs as production should, scaled down: SASL/SCRAM on a loopback listener, the
StandardAuthorizer denying what no ACL allows, one principal per service (admin, gateway, ingest,
detector, alerts) with the ACLs of :mod:`wardwatch.kafka_acls`. Passwords are random per server;
the listener can have TLS (SASL_SSL) with a given certificate (tests/security/test_kafka_tls.py).

Children are started with PR_SET_PDEATHSIG, so a killed test run takes its servers with it.

    python -m devservices install        # fetch and build, cached
    python -m devservices up             # run both until Ctrl-C, print their addresses
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from wardwatch.kafka_acls import SERVICES, service_grants
from wardwatch.settings import Settings
from wardwatch.topics import Topics

KAFKA_VERSION = os.environ.get("WARDWATCH_KAFKA_VERSION", "4.1.1")
LOG4J_VERSION = "2.24.3"
INFLUXDB_VERSION = os.environ.get("WARDWATCH_INFLUXDB_VERSION", "1.8.10")


def cache_dir() -> Path:
    d = Path(os.environ.get("WARDWATCH_CACHE", Path.home() / ".cache" / "wardwatch"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    # Linux only: the kernel sends SIGKILL to the child when the process that started it dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _log(msg: str) -> None:
    print(f"[devservices] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- install

KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>org.wardwatch</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>{artifact}</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="out" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console></Appenders>
  <Loggers>
    <Logger name="kafka" level="WARN"/><Logger name="org.apache.kafka" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
"""


# Runs one AclCommand per line of standard input in one JVM: a JVM start costs more than a command.
ACL_BATCH_JAVA = """public class AclBatch {
    public static void main(String[] args) throws Exception {
        java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; )
            if (!line.isBlank()) org.apache.kafka.tools.AclCommand.main(line.trim().split("\\\\s+"));
    }
}
"""


def _maven_libs(base: Path, artifact: str) -> Path:
    """``base/libs``: the jars of a Kafka artifact and its runtime dependencies, from Maven Central once."""
    libs = base / "libs"
    if (base / ".complete").exists():
        return libs
    if not shutil.which("java") or not shutil.which("mvn"):
        raise RuntimeError("Kafka needs Java 17+ and Maven (mvn) on PATH: apt-get install openjdk-17-jdk-headless maven")
    base.mkdir(parents=True, exist_ok=True)
    (base / "pom.xml").write_text(KAFKA_POM.format(artifact=artifact, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
    (base / "log4j2.xml").write_text(LOG4J2_XML)
    _log(f"fetching {artifact} {KAFKA_VERSION} jars from Maven Central (once)")
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(base / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
        check=True,
    )
    (base / ".complete").touch()
    return libs


def kafka_libs() -> Path:
    """The folder of Kafka broker jars."""
    return _maven_libs(cache_dir() / f"kafka-{KAFKA_VERSION}", "kafka_2.13")


def kafka_tools_classpath() -> str:
    """Classpath of the Kafka tools (``org.apache.kafka.tools.AclCommand``) and our AclBatch runner."""
    base = cache_dir() / f"kafka-tools-{KAFKA_VERSION}"
    libs = _maven_libs(base, "kafka-tools")
    classes = base / "classes"
    if not (classes / "AclBatch.class").exists():
        classes.mkdir(exist_ok=True)
        (base / "AclBatch.java").write_text(ACL_BATCH_JAVA)
        subprocess.run(["javac", "-cp", f"{libs}/*", "-d", str(classes), str(base / "AclBatch.java")], check=True)
    return f"{classes}:{libs}/*"


def influxd_binary() -> Path:
    """The influxd binary, built with ``go install`` once (pure Go, no cgo)."""
    bindir = cache_dir() / f"influxdb-{INFLUXDB_VERSION}" / "bin"
    binary = bindir / "influxd"
    if binary.exists():
        return binary
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise RuntimeError("InfluxDB is built from source and needs Go on PATH (https://go.dev/dl)")
    bindir.mkdir(parents=True, exist_ok=True)
    _log(f"building InfluxDB {INFLUXDB_VERSION} with go install (once, about a minute)")
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(bindir))
    subprocess.run([go, "install", f"github.com/influxdata/influxdb/cmd/influxd@v{INFLUXDB_VERSION}"], check=True, env=env)
    return binary


# ---------------------------------------------------------------------------------------- servers


@dataclass
class Proc:
    name: str
    workdir: Path
    popen: subprocess.Popen | None = None
    log_path: Path | None = None

    def _spawn(self, argv: list[str]) -> None:
        self.log_path = self.workdir / f"{self.name}.log"
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                      preexec_fn=die_with_parent, start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait(5)


def _wait(what: str, ready, proc: Proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{what} exited during start-up:\n{proc.log_tail()}")
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not answer within {timeout:.0f}s:\n{proc.log_tail()}")


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
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        props = self._props()
        cp = f"{libs}/*"
        log4j = f"-Dlog4j2.configurationFile={libs.parent / 'log4j2.xml'}"
        if not (self.workdir / "data" / "meta.properties").exists():
            users = [a for name, pw in self.passwords.items()
                     for a in ("--add-scram", f"{MECHANISM}=[name={name},password={pw}]")]
            subprocess.run(["java", log4j, "-cp", cp, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                            "-c", str(props), *users], check=True, capture_output=True)
        self._spawn(["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC", log4j,
                     "-cp", cp, "kafka.Kafka", str(props)])

    def wait_ready(self, timeout: float = 90.0) -> None:
        _wait("Kafka", lambda: kafka_ready(Settings(**self.client_settings())), self, timeout)

    def add_acls(self, grants) -> subprocess.Popen:
        """Start adding ACLs with AclCommand, all in one JVM; the caller waits for the process."""
        argv = ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", kafka_tools_classpath(), "AclBatch"]
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
    return _run_async(probe())


def _run_async(coro):
    """Run a coroutine on a thread of its own, so callers inside an event loop (benchmarks, async
    fixtures) can use these functions too."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


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
        _wait("InfluxDB", lambda: _http_ok(f"{self.url}/ping"), self, timeout)
        self.create_database(self.database)
        return self

    def create_database(self, name: str) -> None:
        data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
        urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10).read()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError):
        return False


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
        _run_async(ensure_topics(Settings(topic_prefix=base.topic_prefix, readings_partitions=base.readings_partitions,
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devservices", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="fetch Kafka jars and build influxd into the cache")
    up = sub.add_parser("up", help="start Kafka and InfluxDB and run until interrupted")
    up.add_argument("--env-file", help="write the WARDWATCH_* settings for these servers to this file (Kafka admin) "
                                       "and to FILE.<service> for each service principal")
    args = ap.parse_args(argv)
    if args.cmd == "install":
        print(kafka_libs())
        print(influxd_binary())
        return 0
    services = start_services()
    env = services.env()
    if args.env_file:
        # FILE as admin (topics, tools), FILE.<service> for each service's own principal.
        for principal in PRINCIPALS:
            path = Path(args.env_file if principal == "admin" else f"{args.env_file}.{principal}")
            path.write_text("".join(f"{k}={v}\n" for k, v in services.env(principal).items()))
            path.chmod(0o600)  # it holds a password
    print(json.dumps(env), flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop and services.kafka.alive() and services.influx.alive():
            time.sleep(0.5)
    finally:
        services.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
