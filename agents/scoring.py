"""In-stream scoring of every applied event with the deployed models.

- ``fs.control`` (compacted, keyed by model name) carries the *desired* state
  of a model (``agents.control_records.ModelCommand``).
  Commands are absolute, so the latest record per model is enough to rebuild
  the state after compaction; "rollback" is resolved by the command line into
  the previous primary.
- ``check_command`` accepts a command only if every version it names exists
  and its MOJO loads; the control plane (``agents.control_plane``) publishes
  the accepted state, which every worker follows.
- The scoring step runs inside the source's ingest agent right after the
  features are computed: one primary prediction per applied event, plus one
  on ``fs.predictions.shadow`` when a shadow is set.  Loaded MOJOs are cached
  per (name, version) in this process: they are derived from the registry.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust

from agents.control_plane import CommandError, ControlPlane
from agents.control_records import ModelCommand, ModelDeployment, SwitchAudit, encode, now_iso
from agents.metrics import Metrics
from kafka_plumbing.settings import Settings
from models.mojo_scorer import ModelLoadError, MojoScorer, Prediction
from models.registry import Registry, RegistryError
from tables.model_spec import ModelSpec
from tables.definitions import Definitions

log = logging.getLogger(__name__)

ACTIONS = ("deploy", "rollback", "shadow", "unshadow")


def desired_state(current: ModelDeployment | None, action: str, model: str, version: int | None) -> ModelCommand:
    """The absolute state a command asks for, given the current one."""
    state = ModelCommand(model=model, action=action)
    if current is not None:
        state.primary, state.shadow, state.previous = current.primary, current.shadow, current.previous
    if action == "deploy":
        if version is None:
            raise CommandError("deploy needs a version")
        if version != state.primary:
            state.previous = state.primary
        state.primary = version
    elif action == "rollback":
        if not state.previous:
            raise CommandError(f"{model} has no previous version to roll back to")
        state.primary, state.previous = state.previous, state.primary
    elif action == "shadow":
        if version is None:
            raise CommandError("shadow needs a version")
        state.shadow = version
    elif action == "unshadow":
        state.shadow = None
    else:
        raise CommandError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    return state


@dataclass
class ModelCache:
    """Loaded MOJOs of this process, keyed by (name, version)."""

    registry: Registry
    loaded: dict[tuple[str, int], MojoScorer] = field(default_factory=dict)

    def get(self, name: str, version: int) -> MojoScorer:
        key = (name, version)
        scorer = self.loaded.get(key)
        if scorer is None:
            scorer = MojoScorer.load(self.registry.get(name, version).mojo_path)
            self.loaded[key] = scorer
        return scorer

    def check(self, name: str, version: int) -> None:
        """Raises CommandError unless the version exists and its MOJO loads."""
        try:
            self.get(name, version)
        except (RegistryError, ModelLoadError) as exc:
            raise CommandError(str(exc)) from exc


def model_input(spec_columns: list[str], record: dict[str, Any], features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The row a model sees: ``view.feature`` from the served values, the rest from the event."""
    row: dict[str, Any] = {}
    for column in spec_columns:
        if "." in column:
            view, name = column.split(".", 1)
            row[column] = features.get(view, {}).get(name)
        else:
            row[column] = record.get(column)
    return row


@dataclass
class ScoringRuntime:
    settings: Settings
    definitions: Definitions
    specs: dict[str, ModelSpec]
    cache: ModelCache
    plane: ControlPlane
    predictions: faust.TopicT
    shadow_predictions: faust.TopicT
    audit: faust.TopicT
    metrics: Metrics
    # (topic, partition, model) -> version last used: to audit where versions switch
    last_used: dict[tuple[str, int, str], int] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.specs.values():
            numeric, categorical, _ = spec.feature_columns(self.definitions)
            self.columns[spec.name] = numeric + categorical

    @property
    def deployments(self) -> dict[str, ModelDeployment]:
        """model -> accepted state, followed from the compacted deployments log."""
        return self.plane.models

    def check_command(self, command: ModelCommand) -> ModelDeployment:
        """The state a model command asks for, if every version it names loads."""
        model = command.model
        if model not in self.specs:
            raise CommandError(f"unknown model {model!r}; known: {', '.join(self.specs) or 'none'}")
        for version in (command.primary, command.shadow):
            if version is not None:
                self.cache.check(model, version)
        return ModelDeployment(model=model, primary=command.primary, shadow=command.shadow,
                               previous=command.previous, command_id=command.id, applied_at=now_iso())

    def models_for(self, source: str) -> list[ModelSpec]:
        return [spec for spec in self.specs.values() if spec.source == source]

    def score(self, spec: ModelSpec, version: int, row: dict[str, Any]) -> tuple[Prediction, float]:
        scorer = self.cache.get(spec.name, version)
        started = time.perf_counter()
        prediction = scorer.score(row)
        return prediction, (time.perf_counter() - started) * 1e6

    def prediction_record(
        self, spec: ModelSpec, version: int, role: str, row: dict[str, Any], prediction: Prediction,
        latency_us: float, provenance: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            **provenance,
            "model": spec.name,
            "model_version": version,
            "role": role,
            "label": prediction.label,
            "probabilities": prediction.probabilities,
            "labels": self.cache.get(spec.name, version).labels,
            "unknown_levels": prediction.unknown_levels,
            "features": row,
            "view_versions": {v: self.definitions.views[v].version for v in spec.views},
            "score_latency_us": round(latency_us, 1),
            "scored_at": now_iso(),
        }

    def score_event(
        self, source: str, record: dict[str, Any], features: dict[str, dict[str, Any]],
        provenance: dict[str, Any], key: bytes | None,
    ) -> list[str]:
        """Score with every deployed model of ``source``; returns error texts (for the DLQ)."""
        errors = []
        for spec in self.models_for(source):
            state = self.deployments.get(spec.name)
            if state is None or not state.primary:
                continue
            filling = [v for v in spec.views if v not in features]
            if filling:  # never score a model on a view that is still being filled here
                errors.append(f"{spec.name}: view {', '.join(filling)} is not filled on this partition yet")
                continue
            row = model_input(self.columns[spec.name], record, features)
            for role, version, topic in (("primary", state.primary, self.predictions),
                                         ("shadow", state.shadow, self.shadow_predictions)):
                if not version:
                    continue
                try:
                    prediction, latency = self.score(spec, version, row)
                except Exception as exc:  # a bad model or row never stops the worker
                    errors.append(f"{spec.name} v{version} ({role}): {type(exc).__name__}: {exc}")
                    self.metrics.scoring_errors.labels(spec.name, str(version)).inc()
                    continue
                self.metrics.predictions.labels(spec.name, str(version), role).inc()
                self.metrics.score_latency.observe(latency / 1e6)
                if role == "primary":
                    self._audit_switch(spec.name, version, provenance)
                record_out = self.prediction_record(spec, version, role, row, prediction, latency, provenance)
                topic.send_soon(key=key, value=json.dumps(record_out).encode())
        return errors

    def _audit_switch(self, model: str, version: int, provenance: dict[str, Any]) -> None:
        slot = (provenance["topic"], provenance["partition"], model)
        previous = self.last_used.get(slot)
        if previous != version:
            self.last_used[slot] = version
            self.audit.send_soon(key=model.encode(), value=encode(SwitchAudit(
                model=model, previous=previous, to=version, topic=provenance["topic"],
                partition=provenance["partition"], first_offset=provenance["offset"], at=now_iso(),
            )))


def register_scoring(
    app: faust.App, settings: Settings, definitions: Definitions, specs: dict[str, ModelSpec], metrics: Metrics,
    plane: ControlPlane,
) -> ScoringRuntime:
    return ScoringRuntime(
        settings=settings,
        definitions=definitions,
        specs=specs,
        cache=ModelCache(Registry(settings.registry_dir)),
        plane=plane,
        predictions=app.topic(settings.topics.predictions, key_type=bytes, value_type=bytes),
        shadow_predictions=app.topic(settings.topics.shadow_predictions, key_type=bytes, value_type=bytes),
        audit=plane.audit,
        metrics=metrics,
    )
