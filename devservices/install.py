"""Fetch and build the dev servers into a cache outside the checkout, once.

Kafka is the broker's jars from Maven Central (``mvn dependency:copy-dependencies``); InfluxDB 1.8
(which serves the ``/api/v2`` write and Flux query API that influxdb-client uses) is built with
``go install``. Both are cached under ``$WARDWATCH_CACHE`` (default ``~/.cache/wardwatch``), so a
second run starts in seconds. Java, Maven and Go themselves come from :mod:`devservices.tools`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from . import tools
from .process import log

KAFKA_VERSION = os.environ.get("WARDWATCH_KAFKA_VERSION", "4.1.1")
LOG4J_VERSION = "2.24.3"
INFLUXDB_VERSION = os.environ.get("WARDWATCH_INFLUXDB_VERSION", "1.8.10")


def cache_dir() -> Path:
    d = Path(os.environ.get("WARDWATCH_CACHE", Path.home() / ".cache" / "wardwatch"))
    d.mkdir(parents=True, exist_ok=True)
    return d


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
    mvn = tools.maven()
    base.mkdir(parents=True, exist_ok=True)
    (base / "pom.xml").write_text(KAFKA_POM.format(artifact=artifact, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
    (base / "log4j2.xml").write_text(LOG4J2_XML)
    log(f"fetching {artifact} {KAFKA_VERSION} jars from Maven Central (once)")
    subprocess.run(
        [mvn, "-q", "-B", "-f", str(base / "pom.xml"), "dependency:copy-dependencies",
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
        tools.java()
        classes.mkdir(exist_ok=True)
        (base / "AclBatch.java").write_text(ACL_BATCH_JAVA)
        subprocess.run([tools.ensure("javac")["javac"], "-cp", f"{libs}/*", "-d", str(classes),
                        str(base / "AclBatch.java")], check=True)
    return f"{classes}:{libs}/*"


def influxd_binary() -> Path:
    """The influxd binary, built with ``go install`` once (pure Go, no cgo)."""
    bindir = cache_dir() / f"influxdb-{INFLUXDB_VERSION}" / "bin"
    binary = bindir / "influxd"
    if binary.exists():
        return binary
    go = tools.go()
    bindir.mkdir(parents=True, exist_ok=True)
    log(f"building InfluxDB {INFLUXDB_VERSION} with {go} install (once, about a minute)")
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(bindir))
    subprocess.run([go, "install", f"github.com/influxdata/influxdb/cmd/influxd@v{INFLUXDB_VERSION}"], check=True, env=env)
    return binary
