"""Retention checked, not assumed: commands refuse pre-existing topics that
would silently lose history, and create the others with the configured
retention (kafka_plumbing.topic_retention), against the real broker."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from kafka_plumbing import clients
from kafka_plumbing.settings import Settings
from kafka_plumbing.topic_retention import topic_configs
from kafka_plumbing.topics import TopicSpec, ensure_topics, existing_counts

pytestmark = pytest.mark.integration


def fresh(settings: Settings) -> Settings:
    tag = uuid.uuid4().hex[:6]
    return replace(settings, topic_prefix=f"{settings.topic_prefix}-{tag}", app_id=f"fs-ret{tag}")


def featurestream(settings: Settings, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # A check that let the topic through would start the worker for good: the timeout fails the test then.
    return subprocess.run([sys.executable, "-m", "app.cli", *args],
                          env={**os.environ, **settings.as_env(), **(extra or {})},
                          capture_output=True, text=True, timeout=90)


def said(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())  # the console wraps long lines


def create(settings: Settings, name: str, config: dict[str, str]) -> None:
    asyncio.run(ensure_topics(settings, [TopicSpec(name, settings.partitions, config)]))


def configs(settings: Settings, name: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        admin = clients.admin(settings)
        await admin.start()
        try:
            return (await topic_configs(admin, [name]))[name]
        finally:
            await admin.close()
    return asyncio.run(read())


def alter(settings: Settings, name: str, config: dict[str, str]) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def run() -> None:
        admin = clients.admin(settings)
        await admin.start()
        try:
            # AlterConfigs replaces the topic's overrides: give every one it must keep.
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, config)])
        finally:
            await admin.close()
    asyncio.run(run())


def test_worker_refuses_a_source_log_with_finite_retention(isolated: Settings, tmp_path: Path) -> None:
    settings = fresh(isolated)
    log = settings.topics.events("departures")
    create(settings, log, {"retention.ms": "86400000"})
    refused = featurestream(settings, "worker", "--data-dir", str(tmp_path / "w"))
    out = said(refused)
    assert refused.returncode == 2, out
    assert f"{log} has retention.ms=86400000, not -1" in out, out
    assert "kafka-configs.sh" in out and "--add-config retention.ms=-1" in out, out
    # The check comes before any topic is made: nothing was created past the refusal.
    assert asyncio.run(existing_counts(settings, [settings.topics.features("departures")])) == {}


def test_a_deleting_changelog_is_refused_until_fixed(isolated: Settings) -> None:
    settings = fresh(isolated)
    changelog = settings.topics.state_changelog(settings.app_id, "departures")
    create(settings, changelog, {"cleanup.policy": "delete"})
    refused = featurestream(settings, "topics")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{changelog} has cleanup.policy=delete, not compact" in said(refused)

    alter(settings, changelog, {"cleanup.policy": "compact"})
    fixed = featurestream(settings, "topics")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert configs(settings, settings.topics.events("departures")) == {
        "cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def test_chosen_retentions_apply_to_new_topics_and_are_reported_on_old_ones(isolated: Settings) -> None:
    settings = fresh(isolated)
    made = featurestream(settings, "topics", extra={"FS_PREDICTIONS_RETENTION_MS": "86400000",
                                                    "FS_AUDIT_RETENTION_MS": "2592000000"})
    assert made.returncode == 0, made.stdout + made.stderr
    assert configs(settings, settings.topics.predictions)["retention.ms"] == "86400000"
    assert configs(settings, settings.topics.audit)["retention.ms"] == "2592000000"

    # Another choice later does not stop anything: it is reported, the topic keeps its setting.
    again = featurestream(settings, "topics", extra={"FS_PREDICTIONS_RETENTION_MS": "3600000"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{settings.topics.predictions} has retention.ms=86400000, not 3600000" in said(again)
    assert configs(settings, settings.topics.predictions)["retention.ms"] == "86400000"
