"""Models: point-in-time training sets, H2O training, the registry, MOJO scoring (no Faust).

Public API:

- ``models.training_set``: ``point_in_time`` (labels joined by the T-based rule) and
  ``model_frame`` (a declared model's training frame, by replay).
- ``models.train``: ``train`` runs the stages (``train_data``: prepare and split;
  ``train_fit``; ``train_evaluate``; ``train_publish``) configured by
  ``models.train_config.TrainConfig``.
- ``models.pipeline.train_from_log``: the two together, for ``featurestream train``.
- ``models.registry.Registry``: versions on disk.
- ``models.mojo_scorer.MojoScorer``: scoring through h2o-genmodel in-process, a batch per
  JPype call (``score_many``); ``models.scoring_rate.measure_scoring`` measures it.
"""
