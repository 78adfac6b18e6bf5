"""Creates the project's topics explicitly, with the configs DESIGN.md fixes.

Faust only declares its internal topics; event topics are the log and must
never expire, so they are created here with ``retention.ms=-1`` before
anything produces to them, and topics that exist already are checked to keep
their history (kafka_plumbing.topic_retention).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from kafka_plumbing import clients
from kafka_plumbing.partition_count import PartitionMismatch, counts_of, settle
from kafka_plumbing.settings import Settings
from kafka_plumbing.topic_retention import RetentionMismatch, drifts, refusal, topic_configs

log = logging.getLogger(__name__)

FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
# A state flush is one record batch, so the state changelog takes large ones.
STATE_BATCH_BYTES = 64 * 1024 * 1024
STATE = {"cleanup.policy": "compact", "max.message.bytes": str(STATE_BATCH_BYTES)}
COMPACTED = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    # A topic that exists with history configs other than ``config`` is
    # refused when this holds (it would lose what replays and restores
    # need), and only reported otherwise (its retention is a choice).
    keeps_history: bool = False


def _retention(ms: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(ms)}


def keyed_topics(settings: Settings, sources: list[str]) -> list[TopicSpec]:
    """Topics with ``settings.partitions`` partitions: keys are mapped to their partitions by that count."""
    n = settings.partitions
    predictions = _retention(settings.predictions_retention_ms)
    specs = [TopicSpec(settings.topics.events(s), n, FOREVER, keeps_history=True) for s in sources]
    specs += [TopicSpec(settings.topics.features(s), n, FOREVER, keeps_history=True) for s in sources]
    specs += [TopicSpec(settings.topics.state_changelog(settings.app_id, s), n, STATE, keeps_history=True)
              for s in sources]
    specs += [
        TopicSpec(settings.topics.dlq, n, FOREVER, keeps_history=True),
        TopicSpec(settings.topics.predictions, n, predictions),
        TopicSpec(settings.topics.shadow_predictions, n, predictions),
        TopicSpec(settings.topics.labels, n, FOREVER, keeps_history=True),
    ]
    return specs


def project_topics(settings: Settings, sources: list[str]) -> list[TopicSpec]:
    return keyed_topics(settings, sources) + [
        TopicSpec(settings.topics.metrics, 1, {}),
        TopicSpec(settings.topics.alerts, 1, {}),
        TopicSpec(settings.topics.control, 1, COMPACTED, keeps_history=True),
        TopicSpec(settings.topics.deployments, 1, COMPACTED, keeps_history=True),
        TopicSpec(settings.topics.audit, 1, _retention(settings.audit_retention_ms)),
    ]


async def existing_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    """Partitions of those of ``names`` that exist."""
    admin = clients.admin(settings)
    await admin.start()
    try:
        present = sorted(set(names) & set(await admin.list_topics()))
        return counts_of(await admin.describe_topics(present)) if present else {}
    finally:
        await admin.close()


async def resolve_partitions(settings: Settings, sources: list[str]) -> Settings:
    """``settings`` with the partition count the existing topics were created with (see partition_count)."""
    names = [spec.name for spec in keyed_topics(settings, sources)]
    return settle(settings, await existing_counts(settings, names))


def resolve_partitions_sync(settings: Settings, sources: list[str]) -> Settings:
    return asyncio.run(resolve_partitions(settings, sources))


async def ensure_topics(settings: Settings, specs: list[TopicSpec]) -> list[str]:
    """Create what is missing; returns the names created.  Refuses (PartitionMismatch)
    when a keyed topic exists with another count than ``settings.partitions``: the new
    ones would be created with a count the old ones do not have; and refuses
    (RetentionMismatch) an existing topic that would lose history."""
    admin = clients.admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        keyed = [s.name for s in specs if s.name in existing and s.partitions == settings.partitions]
        if keyed:
            found = counts_of(await admin.describe_topics(keyed))
            odd = {name: n for name, n in found.items() if n != settings.partitions}
            if odd:
                name, count = min(odd.items())
                raise PartitionMismatch(
                    f"FS_PARTITIONS={settings.partitions}{'' if settings.partitions_set else ' (the default)'} but "
                    f"{name} has {count} partitions: set FS_PARTITIONS={count}, or leave it unset where the "
                    "command adopts the topics' count (docs/configuration.md#partitions)")
        await _check_history(admin, [s for s in specs if s.name in existing])
        missing = [s for s in specs if s.name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(s.name, s.partitions, settings.replication, topic_configs=s.config) for s in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another process won the race: fine
        return [s.name for s in missing]
    finally:
        await admin.close()


async def _check_history(admin: AIOKafkaAdminClient, present: list[TopicSpec]) -> None:
    specs = {s.name: s for s in present if s.config}
    found = await topic_configs(admin, sorted(specs))
    differ = drifts({name: s.config for name, s in specs.items()}, found)
    guarded = [d for d in differ if specs[d.topic].keeps_history]
    if guarded:
        raise RetentionMismatch(refusal(guarded))
    for d in differ:
        log.warning("%s (set where it was created; the FS_* retention settings apply to new topics only)",
                    d.describe())


def ensure_topics_sync(settings: Settings, sources: list[str]) -> list[str]:
    return asyncio.run(ensure_topics(settings, project_topics(settings, sources)))
