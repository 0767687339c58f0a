"""Development servers: the real Apache Kafka and InfluxDB as plain processes, for tests and benchmarks.

Not part of the service: operators run their own Kafka and InfluxDB (see docs/operations.md).
``python -m devservices install|up`` installs or runs them; tests start them with
:func:`start_services`. One job a module:

- :mod:`.tools`: Java, Maven and Go, found on PATH or installed from Debian's packages;
- :mod:`.install`: the cache, Kafka's jars from Maven Central, influxd built with Go;
- :mod:`.process`: child processes (die with the parent), free ports, waiting until ready;
- :mod:`.kafka` and :mod:`.influx`: one server each;
- :mod:`.stack`: both together (:func:`start_services`, :func:`bench_services`);
- :mod:`.cli`: ``python -m devservices``.
"""

from .cli import main
from .influx import InfluxServer
from .install import cache_dir
from .kafka import KafkaServer
from .process import die_with_parent, free_port
from .stack import Services, bench_services, start_services

__all__ = ["InfluxServer", "KafkaServer", "Services", "bench_services", "cache_dir", "die_with_parent", "free_port",
           "main", "start_services"]
