"""Kafka plumbing, at the bottom of the layers: it imports nothing else of ours.

Public API:

- ``kafka_plumbing.settings``: ``Settings`` (every ``FS_*`` variable) and ``load``.
- ``kafka_plumbing.catalogue.Topics``: the only place topic names are spelled.
- ``kafka_plumbing.topics.ensure_topics``: creates the project's topics with their configs.
- ``kafka_plumbing.log_reader``: a topic's bounds, a whole topic, a topic partition by partition.
- ``kafka_plumbing.producer``: publish events keyed by their source's key.
- ``kafka_plumbing.signing``: the control key and HMAC signatures of control-plane records.
"""
