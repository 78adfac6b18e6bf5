"""Retraining with champion and challenger: ``featurestream retrain``.

Two steps, each a command a person or a scheduler (cron, a Kubernetes
CronJob) runs:

- ``challenge``: train a new version from the logs up to now (the path of
  ``featurestream train``) and deploy it as the shadow of the primary, the
  champion;
- ``decide``: read live quality of both from the logs themselves, the
  predictions, shadow predictions and the label source's log, with the
  monitor's join (``models.quality``), so it works whether or not a worker
  runs the monitor (``FS_MONITOR``) and its figures are those a replay of the
  logs gives; then the rule of ``models.challenge`` promotes the challenger,
  retires it, or waits for more labelled events.

Each step writes a signed ``RetrainAudit`` record to ``fs.audit``, beside the
workers' own ``CommandAudit`` verdicts on the shadow, promote and unshadow
commands."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord

from agents.control_client import issue_sync, publish_audit, states_sync
from agents.control_records import CommandAudit, ModelDeployment, RetrainAudit, now_iso
from kafka_plumbing.log_reader import read_all
from kafka_plumbing.settings import Settings
from models.challenge import PROMOTE, WAIT, ChallengeRule, TimedLabel, Verdict, head_to_head, judge, labelled_pairs
from models.pipeline import train_from_log
from models.quality import LabelJoin, Pair, Scored, scored_of
from models.registry import ModelVersion
from tables.definitions import Definitions
from tables.labels import label_of
from tables.log_record import is_control
from tables.model_spec import ModelSpec, model_specs
from tables.validation import parse_time_ms


class RetrainError(RuntimeError):
    """The step cannot be taken as things stand; the message says why and what to do."""


@dataclass(frozen=True)
class Challenge:
    version: ModelVersion
    shadow: CommandAudit  # the workers' verdict on the shadow command


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    champion: int
    challenger: int
    command: CommandAudit | None  # the verdict on promote / unshadow; None while waiting


def challenge(settings: Settings, definitions: Definitions, name: str, ntrees: int, max_depth: int) -> Challenge:
    spec = _spec(definitions, name)
    state = _state(settings, name)
    if state.shadow is not None:
        raise RetrainError(f"{name} v{state.shadow} is already the challenger (shadow): decide on it first "
                           f"(featurestream retrain {name} --decide) or unshadow it")
    trained = train_from_log(settings, definitions, spec.name, ntrees=ntrees, max_depth=max_depth)
    held = trained.metadata.get("metrics", {}).get("holdout") or trained.metadata.get("metrics", {}).get("xval") or {}
    _audit(settings, RetrainAudit(
        step="trained", model=name, at=now_iso(), by=settings.admin_name, champion=state.primary,
        challenger=trained.version, holdout_auc=held.get("auc"),
        training_rows=trained.metadata.get("row_counts", {}).get("total")))
    shadow = issue_sync(settings, name, "shadow", trained.version, by=settings.admin_name)
    _audit(settings, RetrainAudit(
        step="shadowed", model=name, at=now_iso(), by=settings.admin_name, champion=state.primary,
        challenger=trained.version, result=shadow.result, reason=shadow.reason))
    return Challenge(trained, shadow)


def decide(settings: Settings, definitions: Definitions, name: str, rule: ChallengeRule) -> Decision:
    spec = _spec(definitions, name)
    state = _state(settings, name)
    if state.shadow is None or state.primary is None:
        raise RetrainError(f"{name} has no challenger in shadow: start one with featurestream retrain {name}")
    champion, challenger = state.primary, state.shadow
    pairs = asyncio.run(live_pairs(settings, definitions, spec, (champion, challenger)))
    verdict = judge(*head_to_head(pairs, (name, champion, "primary"), (name, challenger, "shadow")), rule)
    ours, theirs = verdict.values(rule.metric)
    _audit(settings, RetrainAudit(
        step="decided", model=name, at=now_iso(), by=settings.admin_name, champion=champion, challenger=challenger,
        result=verdict.outcome, reason=verdict.reason, metric=rule.metric, margin=rule.margin,
        min_labelled=rule.min_labelled, labelled=verdict.labelled, champion_value=ours, challenger_value=theirs))
    if verdict.outcome == WAIT:
        return Decision(verdict, champion, challenger, None)
    promote = verdict.outcome == PROMOTE
    command = issue_sync(settings, name, "promote" if promote else "unshadow", challenger if promote else None,
                         by=settings.admin_name)
    _audit(settings, RetrainAudit(
        step="promoted" if promote else "retired", model=name, at=now_iso(), by=settings.admin_name,
        champion=champion, challenger=challenger, result=command.result, reason=command.reason))
    return Decision(verdict, champion, challenger, command)


async def live_pairs(settings: Settings, definitions: Definitions, spec: ModelSpec,
                     versions: tuple[int, ...]) -> list[Pair]:
    """The model's predictions by ``versions`` (both topics) joined with its label source's log, whole."""
    topics = settings.topics
    predictions: list[tuple[Scored, int]] = []
    for topic in (topics.predictions, topics.shadow_predictions):
        for message in await read_all(settings, topic):
            scored = _scored(_json(message))
            if scored is not None and scored.model == spec.name and scored.version in versions:
                # primary and shadow topics are partitioned alike: separate lanes, as in the monitor
                predictions.append((scored, message.partition * 2 + (scored.role != "primary")))
    time_field = definitions.source(spec.label_source).time_field
    labels: list[TimedLabel] = []
    for message in await read_all(settings, topics.events(spec.label_source)):
        data = _json(message)
        found = None if data is None else label_of(spec, data)
        try:
            time_ms = None if found is None or data is None else parse_time_ms(data[time_field])
        except (KeyError, ValueError, TypeError):
            time_ms = None
        if found is not None and time_ms is not None:
            labels.append(TimedLabel(found, time_ms, message.partition))
    source = definitions.source(spec.source)
    join = LabelJoin(horizon_ms=int(settings.quality_horizon_s * 1000), scored_lateness_ms=source.lateness_ms,
                     label_lateness_ms=definitions.source(spec.label_source).lateness_ms)
    return labelled_pairs(join, predictions, labels)


def _json(message: ConsumerRecord) -> dict[str, Any] | None:
    """The record's JSON object; None for a marker or a record that does not parse (ingest's DLQ has
    those: here they only do not count)."""
    if is_control(message.headers):
        return None
    try:
        data = json.loads(message.value)
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _scored(data: dict[str, Any] | None) -> Scored | None:
    try:
        return None if data is None else scored_of(data)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _spec(definitions: Definitions, name: str) -> ModelSpec:
    specs = model_specs(definitions)
    if name not in specs:
        raise RetrainError(f"no model {name!r} in {definitions.module}.MODELS; known: {', '.join(specs) or 'none'}")
    return specs[name]


def challenger_of(settings: Settings, name: str) -> int | None:
    """The version in shadow of ``name`` (its challenger), if any."""
    state = states_sync(settings).get(name)
    return None if state is None else state.shadow


def _state(settings: Settings, name: str) -> ModelDeployment:
    state = states_sync(settings).get(name)
    if state is None or state.primary is None:
        raise RetrainError(f"{name} has no champion: deploy one first (featurestream models deploy {name} VERSION)")
    return state


def _audit(settings: Settings, record: RetrainAudit) -> None:
    asyncio.run(publish_audit(settings, record.model, record))
