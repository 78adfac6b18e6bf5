"""Which partition count a process maps keys with, given the topics that exist
(kafka_plumbing.partition_count): no broker, the decision only."""
from __future__ import annotations

from dataclasses import replace

import pytest

from kafka_plumbing.partition_count import PartitionMismatch, counts_of, settle
from kafka_plumbing.settings import DEFAULT_PARTITIONS, Settings


def unset(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("FS_PARTITIONS", raising=False)
    return Settings()


def test_a_new_deployment_gets_twelve_partitions_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = unset(monkeypatch)
    assert DEFAULT_PARTITIONS == 12 and settings.partitions == 12 and not settings.partitions_set
    assert settle(settings, {}) is settings


def test_fs_partitions_sets_the_count_and_is_passed_to_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_PARTITIONS", "6")
    settings = Settings()
    assert settings.partitions == 6 and settings.partitions_set
    assert settings.as_env()["FS_PARTITIONS"] == "6"
    monkeypatch.setenv("FS_PARTITIONS", "0")
    with pytest.raises(ValueError, match="FS_PARTITIONS=0"):
        Settings()


def test_existing_topics_keep_their_count_when_fs_partitions_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = unset(monkeypatch)
    adopted = settle(settings, {"fs.events.departures": 4, "fs.features.departures": 4})
    assert adopted.partitions == 4
    assert adopted.as_env()["FS_PARTITIONS"] == "4"  # workers it starts map keys by 4 too


def test_an_explicit_count_the_topics_do_not_have_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_PARTITIONS", "12")
    with pytest.raises(PartitionMismatch) as refused:
        settle(Settings(), {"fs.events.departures": 4, "fs.dlq": 4})
    message = str(refused.value)
    assert "FS_PARTITIONS=12" in message and "fs.dlq has 4 partitions" in message
    monkeypatch.setenv("FS_PARTITIONS", "4")
    assert settle(Settings(), {"fs.events.departures": 4}).partitions == 4


def test_topics_that_disagree_are_refused_whatever_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = unset(monkeypatch)
    for asked in (settings, replace(settings, partitions=4)):
        with pytest.raises(PartitionMismatch, match="fs.events.arrivals 12, fs.events.departures 4"):
            settle(asked, {"fs.events.departures": 4, "fs.events.arrivals": 12})


def test_counts_come_from_the_metadata_of_topics_that_exist() -> None:
    described = [
        {"error_code": 0, "topic": "a", "partitions": [{"partition": i} for i in range(4)]},
        {"error_code": 3, "topic": "gone", "partitions": []},  # UNKNOWN_TOPIC_OR_PARTITION
    ]
    assert counts_of(described) == {"a": 4}
