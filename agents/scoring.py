"""Scoring events with the deployed models: every applied event in the stream, and ``POST /score``.

- ``fs.control`` (compacted, keyed by model name) carries the *desired* state
  of a model (``agents.control_records.ModelCommand``).
  Commands are absolute, so the latest record per model is enough to rebuild
  the state after compaction; "rollback" is resolved by the command line into
  the previous primary.
- ``check_command`` accepts a command only if every version it names exists
  and its MOJO loads; the control plane (``agents.control_plane``) publishes
  the accepted state, which every worker follows.
- ``ScoringRuntime.score_event`` is the one scoring path, with the refusal
  rules: the stream (``score_in_stream``, inside the source's ingest agent
  right after the features are computed: one primary prediction per applied
  event, plus one on ``fs.predictions.shadow`` when a shadow is set) and
  ``POST /score`` both call it.  Its output is a typed ``PredictionRecord``.
  Loaded MOJOs are cached per (name, version) in this process: they are
  derived from the registry.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import faust

from agents.control_plane import CommandError, ControlPlane
from agents.cross_replica import CrossReplica
from agents.control_records import ModelCommand, ModelDeployment, SwitchAudit, now_iso
from agents.metrics import Metrics
from agents.outbox import Outbox
from kafka_plumbing.settings import Settings
from models.mojo_scorer import ModelLoadError, MojoScorer, Prediction
from models.registry import Registry, RegistryError
from tables.cross_source import CrossRead, read_inputs
from tables.model_spec import ModelSpec, input_views
from tables.dsl import FeatureView
from tables.definitions import Definitions

log = logging.getLogger(__name__)

ACTIONS = ("deploy", "rollback", "shadow", "unshadow", "promote")


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
    elif action == "promote":  # the shadow (challenger) becomes primary; the champion it beat is the rollback
        if state.shadow is None or (version is not None and version != state.shadow):
            raise CommandError(f"{model} has no shadow" + (f" v{version}" if version is not None else "") + " to promote")
        state.primary, state.previous, state.shadow = state.shadow, state.primary, None
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


@dataclass(frozen=True)
class Provenance:
    """Where a scored event comes from; ``topic/partition/offset`` are None off the log (``POST /score``)."""

    event_id: Any
    source: str
    topic: str | None
    partition: int | None
    offset: int | None
    event_time_ms: int
    event_time: Any


@dataclass(frozen=True)
class PredictionRecord:
    """One record of ``fs.predictions`` (and the body of ``POST /score``): a reproducible training row."""

    provenance: Provenance
    model: str
    model_version: int
    role: str  # "primary" or "shadow"
    label: str | None
    probabilities: list[float] | None
    labels: list[str] | None
    unknown_levels: dict[str, Any]
    features: dict[str, Any]  # the row the model saw: event fields and ``view.feature`` values
    view_versions: dict[str, int]
    score_latency_us: float
    scored_at: str
    # the scored event's value of the model's join key (``ModelSpec.join_key``): what its label is found by
    join_key: Any = None
    # Cross-source inputs (``ModelSpec.inputs``): False when the event was scored before every
    # log it reads had passed its time (waited out, or off the stream): then it may differ
    # from the training set's row.  held_ms: how long the event waited for them.
    complete: bool = True
    held_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The record's JSON object: provenance fields first, then the prediction (flat, as consumers read it)."""
        return {**asdict(self.provenance), **{f.name: getattr(self, f.name) for f in fields(self)[1:]}}

    def encode(self) -> bytes:
        return json.dumps(self.to_json()).encode()

    @classmethod
    def decode(cls, raw: bytes | dict[str, Any]) -> "PredictionRecord":
        data = json.loads(raw) if isinstance(raw, bytes) else dict(raw)
        provenance = Provenance(**{f.name: data.pop(f.name) for f in fields(Provenance)})
        return cls(provenance=provenance, **data)


VIEW_FILLING, SCORING_FAILED = "view_filling", "scoring_error"


@dataclass(frozen=True)
class Refusal:
    """A deployed model that did not score an event, and why."""

    reason: str  # VIEW_FILLING or SCORING_FAILED
    model: str
    version: int
    detail: str


@dataclass(frozen=True)
class ScoreRequest:
    """One event to score: its source, record, the features it was served, where it is in the log."""

    source: str
    record: dict[str, Any]
    features: dict[str, dict[str, Any]]
    provenance: Provenance
    # The models with cross-source inputs score a request only once these are read (the hold);
    # the others only without them: each model scores an event once.
    cross: CrossRead | None = None
    held_ms: float = 0.0


@dataclass
class Scored:
    predictions: list[PredictionRecord] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


@dataclass
class ScoringRuntime:
    settings: Settings
    definitions: Definitions
    specs: dict[str, ModelSpec]
    cache: ModelCache
    plane: ControlPlane
    audit: faust.TopicT
    metrics: Metrics
    # (topic, partition, model) -> version last used: to audit where versions switch
    last_used: dict[tuple[str, int, str], int] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)
    # The logs cross-source inputs read (None: no model has any); started when such a model is first deployed.
    replica: CrossReplica | None = None
    replica_task: asyncio.Future | None = None

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

    def input_views(self, source: str) -> list[FeatureView]:
        """The views of other logs the models of ``source`` read (what its events are held for)."""
        views = {v.ref: v for spec in self.models_for(source) for v in input_views(spec, self.definitions)}
        return list(views.values())

    def holds(self, source: str) -> bool:
        """A deployed model of ``source`` reads other logs: its events go to the hold (and the replica runs)."""
        holding = any(spec.inputs and (state := self.deployments.get(spec.name)) is not None and state.primary
                      for spec in self.models_for(source))
        if holding and self.replica is not None and self.replica_task is None:
            self.replica_task = asyncio.ensure_future(self.replica.run())
            self.replica_task.add_done_callback(self._replica_stopped)
        return holding

    def _replica_stopped(self, task: asyncio.Future) -> None:
        if task.cancelled():
            log.info("cross-source replica cancelled")
        elif task.exception() is not None:
            log.error("cross-source replica stopped; held events wait out", exc_info=task.exception())

    def score_event(
        self, source: str, record: dict[str, Any], features: dict[str, dict[str, Any]], provenance: Provenance,
        roles: tuple[str, ...] = ("primary", "shadow"),
    ) -> Scored:
        """Score one event with every deployed model of ``source`` (``POST /score``).  Cross-source
        inputs are read at once, as far as the replica has got: no wait, ``complete`` says if final."""
        requests = [ScoreRequest(source, record, features, provenance)]
        views = self.input_views(source)
        if views and self.replica is not None and self.holds(source):
            cross = read_inputs(self.replica.logs, views, record, provenance.event_time_ms)
            requests.append(ScoreRequest(source, record, features, provenance, cross=cross))
        results = self.score_events(requests, roles)
        return Scored([p for r in results for p in r.predictions], [x for r in results for x in r.refusals])

    def score_events(self, requests: list["ScoreRequest"], roles: tuple[str, ...] = ("primary", "shadow"),
                     ) -> list[Scored]:
        """Score events with every deployed model of their source: the one scoring path.

        ``features`` is what ``SourceProcessor.read`` served for each event
        (servable views only).  A model with no primary deployed is skipped; a
        model whose view is still filling, or whose scorer fails, is refused
        with the reason (the stream sends it to the DLQ, ``POST /score``
        answers with it).  The rows of one model version are scored in one
        call into genmodel; each prediction's ``score_latency_us`` is its
        share of that call."""
        results = [Scored() for _ in requests]
        jobs: dict[tuple[str, int], list[tuple[int, str, dict[str, Any]]]] = {}
        for i, request in enumerate(requests):
            for spec in self.models_for(request.source):
                state = self.deployments.get(spec.name)
                if state is None or not state.primary or bool(spec.inputs) != (request.cross is not None):
                    continue
                filling = [v for v in spec.views if v not in request.features]
                if filling:  # never score a model on a view that is still being filled here
                    results[i].refusals.append(Refusal(
                        VIEW_FILLING, spec.name, state.primary,
                        f"{spec.name}: view {', '.join(filling)} is not filled on this partition yet",
                    ))
                    continue
                served = request.features if request.cross is None else {**request.features, **request.cross.values}
                row = model_input(self.columns[spec.name], request.record, served)
                for role in roles:
                    version = getattr(state, role)
                    if version:
                        jobs.setdefault((spec.name, version), []).append((i, role, row))
        for (model, version), items in jobs.items():
            spec = self.specs[model]
            for (i, role, row), outcome in zip(items, self._score_rows(spec, version, [row for _, _, row in items])):
                if isinstance(outcome, Exception):  # a bad model or row never stops the worker
                    results[i].refusals.append(Refusal(
                        SCORING_FAILED, model, version, f"{model} v{version} ({role}): {type(outcome).__name__}: {outcome}",
                    ))
                    continue
                prediction, latency = outcome
                results[i].predictions.append(PredictionRecord(
                    provenance=requests[i].provenance, model=model, model_version=version, role=role,
                    label=prediction.label, probabilities=prediction.probabilities,
                    labels=self.cache.get(model, version).labels, unknown_levels=prediction.unknown_levels,
                    features=row,
                    view_versions={v: self.definitions.views[v].version for v in spec.views + spec.inputs},
                    score_latency_us=round(latency, 1), scored_at=now_iso(),
                    join_key=requests[i].record.get(spec.join_key),
                    complete=requests[i].cross is None or requests[i].cross.complete,
                    held_ms=requests[i].held_ms,
                ))
        return results

    def _score_rows(self, spec: ModelSpec, version: int, rows: list[dict[str, Any]],
                    ) -> list[tuple[Prediction, float] | Exception]:
        """(prediction, microseconds) per row, in one call; a failing batch is scored row by row,
        so one bad row fails alone."""
        try:
            scorer = self.cache.get(spec.name, version)
            started = time.perf_counter()
            predictions = scorer.score_many(rows)
            share = (time.perf_counter() - started) * 1e6 / len(rows)
            return [(p, share) for p in predictions]
        except Exception as exc:
            if len(rows) == 1:
                return [exc]
            return [outcome for row in rows for outcome in self._score_rows(spec, version, [row])]

    def score_in_stream(self, requests: list["ScoreRequest"], keys: list[bytes | None], outbox: Outbox,
                        predicted: list[int] | None = None) -> list[list[str]]:
        """Score a flush's applied events, their predictions into the outbox; per event, the
        refusal texts (for the DLQ).  ``predicted`` gets the indexes of the events that have
        a prediction (for the event-to-prediction latency)."""
        out: list[list[str]] = []
        # Counted per flush, not per prediction: one ``labels`` lookup per distinct series.
        tally: Counter[tuple[str, str, str, str]] = Counter()
        latencies: Counter[float] = Counter()
        for i, (request, key, scored) in enumerate(zip(requests, keys, self.score_events(requests))):
            for refusal in scored.refusals:
                if refusal.reason == SCORING_FAILED:
                    self.metrics.scoring_errors.labels(refusal.model, str(refusal.version)).inc()
            if predicted is not None and scored.predictions:
                predicted.append(i)
            for record in scored.predictions:
                tally[(record.model, str(record.model_version), record.role, str(record.label))] += 1
                latencies[record.score_latency_us] += 1
                if record.role == "primary":
                    self._audit_switch(record.model, record.model_version, request.provenance)
                topic = (self.settings.topics.predictions if record.role == "primary"
                         else self.settings.topics.shadow_predictions)
                outbox.add(topic, key, record.encode())
            out.append([refusal.detail for refusal in scored.refusals])
        for labels, n in tally.items():
            self.metrics.predictions.labels(*labels).inc(n)
        for latency_us, n in latencies.items():  # rows of one call share one latency
            self.metrics.score_latency.observe(latency_us / 1e6, n)
        return out

    def _audit_switch(self, model: str, version: int, provenance: Provenance) -> None:
        slot = (provenance.topic, provenance.partition, model)
        previous = self.last_used.get(slot)
        if previous != version:
            self.last_used[slot] = version
            self.plane.audit_soon(model.encode(), SwitchAudit(
                model=model, previous=previous, to=version, topic=provenance.topic,
                partition=provenance.partition, first_offset=provenance.offset, at=now_iso(),
            ))


def register_scoring(
    app: faust.App, settings: Settings, definitions: Definitions, specs: dict[str, ModelSpec], metrics: Metrics,
    plane: ControlPlane,
) -> ScoringRuntime:
    views = {v.ref: v for spec in specs.values() for v in input_views(spec, definitions)}
    return ScoringRuntime(
        settings=settings,
        definitions=definitions,
        specs=specs,
        cache=ModelCache(Registry(settings.registry_dir)),
        plane=plane,
        audit=plane.audit,
        metrics=metrics,
        replica=CrossReplica(settings, definitions, list(views.values())) if views else None,
    )
