"""Checks, before anything runs on them, that the topics holding history keep it.

The event logs are the source of truth and the state changelogs rebuild a
worker's tables: a pre-existing topic with a finite retention (or a
changelog whose policy deletes) would lose history silently, days later,
and no replay could bring it back.  So a command refuses such a topic at
start, naming it and the fix.  Topics whose retention is a choice
(predictions, audit, metrics, alerts) are created with the configured one
and only reported when an existing topic differs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

# The configs that decide whether a topic keeps what was written to it.
HISTORY_KEYS = ("cleanup.policy", "retention.ms", "retention.bytes")


class RetentionMismatch(Exception):
    """A pre-existing topic that must keep its history is configured to lose it."""


@dataclass(frozen=True)
class ConfigDrift:
    """One history config of an existing topic that is not what the project creates it with."""

    topic: str
    key: str
    wanted: str
    found: str

    def describe(self) -> str:
        return f"{self.topic} has {self.key}={self.found}, not {self.wanted}"


def drifts(wanted: dict[str, dict[str, str]], found: dict[str, dict[str, str]]) -> list[ConfigDrift]:
    """The history configs of the topics in both maps that differ from what the project wants."""
    out = []
    for topic in sorted(wanted.keys() & found.keys()):
        for key in HISTORY_KEYS:
            want = wanted[topic].get(key)
            if want is not None and found[topic].get(key) != want:
                out.append(ConfigDrift(topic, key, want, found[topic].get(key, "?")))
    return out


def refusal(guarded: Iterable[ConfigDrift]) -> str:
    """The message a command stops with: what would be lost, and how to fix it."""
    listed = list(guarded)
    fixes = "; ".join(
        f"kafka-configs.sh --bootstrap-server <brokers> --alter --entity-type topics --entity-name {d.topic} "
        f"--add-config {d.key}={d.wanted}"
        for d in listed
    )
    return (
        "these topics would silently lose history: " + "; ".join(d.describe() for d in listed)
        + ". Event logs and feature logs must keep every record (cleanup.policy=delete with retention.ms=-1 "
        "and retention.bytes=-1) and state changelogs must be compacted only (docs/configuration.md#retention). "
        f"Fix the topics ({fixes}), or use a new FS_TOPIC_PREFIX and FS_APP_ID."
    )


async def topic_configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Topic -> its effective history configs (the broker's defaults included), for topics that exist."""
    if not names:
        return {}
    asked = {key: None for key in HISTORY_KEYS}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, dict(asked)) for name in names])
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        resource: dict[str, Any]
        for resource in response.to_object()["resources"]:
            if resource["error_code"] == 0:
                found[resource["resource_name"]] = {
                    e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    return found
