"""The stream processors of a worker, and the clients of its control plane.

Public API:

- ``agents.ingest_loop``: the worker's one consumer of the source logs (its group's
  assignor, ``agents.placement``, tells every worker who owns which partition).
- ``agents.ingest.register_ingest``: one ingest agent per source (validate, decide,
  apply, emit); ``agents.source_runtime.SourceRuntime`` is what it exposes per source.
- ``agents.scoring``: in-stream scoring with the deployed models.
- ``agents.control_plane``: the follower of ``fs.deployments`` and the control agent;
  ``agents.control_records``: its typed records; ``agents.control_client``: issuing
  commands from the command line.
- ``agents.backfill.Backfill``: fill jobs for new view versions; ``agents.rekey_history``:
  a source's history written into a new re-keyed log.
- ``agents.dead_letters``: the DLQ record; ``agents.metrics``: Prometheus metrics;
  ``agents.readiness.is_ready``.
"""
