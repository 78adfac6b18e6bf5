"""Models: point-in-time training sets, H2O training, the registry, MOJO scoring (no Faust).

Public API:

- ``models.training_set``: ``point_in_time`` (labels joined by the T-based rule) and
  ``model_frame`` (a declared model's training frame, by replay).
- ``models.train``: ``TrainConfig`` and ``train`` (H2O GBM, metrics, report, registry).
- ``models.pipeline.train_from_log``: the two together, for ``featurestream train``.
- ``models.registry.Registry``: versions on disk; ``models.mojo_scorer.MojoScorer``: scoring
  through h2o-genmodel in-process.
"""
