"""The pure engine: one definition of every feature, applied online and offline.

No Kafka client, no Faust, no store: plain data in, plain data out.

Public API:

- ``tables.dsl``: ``Source``, ``FeatureView``, ``Feature`` and the aggregation
  constructors (``count``, ``mean``, ``last_k`` ...); ``tables.model_spec.ModelSpec``;
  ``tables.definitions.load`` reads a feature module (``SOURCES``, ``VIEWS``, ``MODELS``).
- ``tables.validation.validate``: an event's bytes to a ``Valid`` record or a ``Rejection``.
- ``tables.schema``: a source's schema versions, their compatibility rules, the one upgrade of older events.
- ``tables.log_record``: ``LogRecord``, the headers of markers and re-keyed records.
- ``tables.processor.SourceProcessor`` over ``Stores``: decides and applies one
  partition's log; ``tables.write_behind.WriteBehind`` holds its writes until a flush.
- ``tables.state``: the typed state (``PartitionClock``, ``ViewState``) and its lossless codec.
- ``tables.replay.replay``: the offline engine; ``tables.point_in_time.as_of_values``.
"""
