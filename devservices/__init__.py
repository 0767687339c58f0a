"""Development servers: the real Apache Kafka and InfluxDB as plain processes, for tests and benchmarks.

Not part of the service: operators run their own Kafka and InfluxDB (see docs/operations.md).
``python -m devservices install|up`` installs or runs them; tests start them with
:func:`start_services`.
"""

from .servers import (InfluxServer, KafkaServer, Services, bench_services, cache_dir, die_with_parent, free_port,
                      main, start_services)

__all__ = ["InfluxServer", "KafkaServer", "Services", "bench_services", "cache_dir", "die_with_parent", "free_port",
           "main", "start_services"]
