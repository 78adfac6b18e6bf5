"""How many partitions the project's keyed topics have, and which count a
process must map keys with.

``settings.partitions`` is not only the count new topics get: every key is
mapped to a partition with it (validation, request routing, backfill).  A
deployment whose topics already exist keeps the count they were created
with; growing ``FS_PARTITIONS`` afterwards must not make a worker map keys
by a count its topics do not have (every event would be judged in the wrong
partition, every read routed to the wrong owner)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from kafka_plumbing.settings import Settings


class PartitionMismatch(Exception):
    """The topics that exist and the partition count asked for disagree."""


def counts_of(described: list[dict[str, Any]]) -> dict[str, int]:
    """Topic -> partitions, from an admin client's ``describe_topics`` (topics that exist only)."""
    return {t["topic"]: len(t["partitions"]) for t in described if t.get("error_code", 0) == 0 and t["partitions"]}


def settle(settings: Settings, existing: dict[str, int]) -> Settings:
    """The settings to map keys with, given the keyed topics that exist and their partition counts.

    No topic yet: a new deployment, ``FS_PARTITIONS`` (or its default) it is.
    Topics that exist decide: their count is adopted when ``FS_PARTITIONS``
    was not set, and a different count set explicitly is refused."""
    counts = sorted(set(existing.values()))
    if not counts:
        return settings
    if len(counts) > 1:
        listing = ", ".join(f"{name} {n}" for name, n in sorted(existing.items()))
        raise PartitionMismatch(
            f"the project's topics have different partition counts ({listing}): keys are mapped to partitions "
            "by one count, so they must all have the same; recreate the odd ones or use a new FS_TOPIC_PREFIX "
            "and FS_APP_ID (docs/configuration.md#partitions)")
    (count,) = counts
    if count == settings.partitions:
        return settings
    if settings.partitions_set:
        name = min(existing)
        raise PartitionMismatch(
            f"FS_PARTITIONS={settings.partitions} but {name} has {count} partitions (as do the other topics of "
            f"prefix {settings.topic_prefix!r}): keys would be mapped to the wrong partitions. "
            f"Unset FS_PARTITIONS or set it to {count} to keep this deployment; more partitions need new topics "
            "(a new FS_TOPIC_PREFIX and FS_APP_ID, docs/configuration.md#partitions)")
    return replace(settings, partitions=count)
