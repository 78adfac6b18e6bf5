"""The pure half of the retention check: which configs differ, and what the refusal says."""
from __future__ import annotations

from kafka_plumbing.topic_retention import ConfigDrift, drifts, refusal

LOG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def test_only_history_configs_of_topics_that_exist_are_compared() -> None:
    wanted = {"a": LOG, "b": {"cleanup.policy": "compact", "max.message.bytes": "1"}, "c": LOG}
    found = {
        "a": {"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"},
        "b": {"cleanup.policy": "compact,delete", "retention.ms": "604800000", "retention.bytes": "-1"},
    }
    assert drifts(wanted, found) == [
        ConfigDrift("a", "retention.ms", "-1", "604800000"),
        ConfigDrift("b", "cleanup.policy", "compact", "compact,delete"),
    ]


def test_a_topic_as_created_has_no_drift() -> None:
    assert drifts({"a": LOG}, {"a": dict(LOG)}) == []


def test_the_refusal_names_each_topic_and_its_fix() -> None:
    message = refusal([ConfigDrift("fs.events.x", "retention.bytes", "-1", "1073741824")])
    assert "fs.events.x has retention.bytes=1073741824, not -1" in message
    assert "--entity-name fs.events.x --add-config retention.bytes=-1" in message
