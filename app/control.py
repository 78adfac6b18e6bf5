"""Issuing control commands from the command line (``featurestream models``).

The current state of a model is the last command the workers *applied*,
read from the audit topic; the new desired state is computed from it and
published to the compacted control topic.  The command then waits for a
worker's verdict on the audit topic."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents.scoring import desired_state, now_iso
from app.log_reader import read_all, stop_consumer
from app.settings import Settings


async def current_states(settings: Settings) -> dict[str, dict[str, Any]]:
    """model -> the last applied desired state."""
    states: dict[str, dict[str, Any]] = {}
    for message in await read_all(settings, settings.topic("audit")):
        try:
            record = json.loads(message.value)
        except (TypeError, ValueError):
            continue
        if record.get("type") == "command" and record.get("result") == "applied":
            state = record.get("state") or record["command"]
            states[state["model"]] = state
    return states


async def issue(settings: Settings, model: str, action: str, version: int | None, by: str,
                wait_seconds: float = 30.0) -> dict[str, Any]:
    """Publish a command and wait for a worker's verdict (the audit record)."""
    states = await current_states(settings)
    command = desired_state(states.get(model), action, model, version)
    command.update({"model": model, "action": action, "id": uuid.uuid4().hex, "by": by, "at": now_iso()})

    audit = AIOKafkaConsumer(settings.topic("audit"), bootstrap_servers=settings.bootstrap,
                             enable_auto_commit=False, auto_offset_reset="latest", **settings.kafka_security())
    await audit.start()
    try:
        for tp in audit.assignment():
            await audit.seek_to_end(tp)
            await audit.position(tp)
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", **settings.kafka_security())
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic("control"), key=model.encode(), value=json.dumps(command).encode())
        finally:
            await producer.stop()
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            batch = await audit.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    record = json.loads(message.value)
                    if record.get("type") == "command" and (record.get("command") or {}).get("id") == command["id"]:
                        return record
        return {"type": "command", "command": command, "result": "pending",
                "reason": f"no worker answered within {wait_seconds:.0f}s (is a worker running?)"}
    finally:
        await stop_consumer(audit)


def issue_sync(settings: Settings, model: str, action: str, version: int | None, by: str) -> dict[str, Any]:
    return asyncio.run(issue(settings, model, action, version, by))


def states_sync(settings: Settings) -> dict[str, dict[str, Any]]:
    return asyncio.run(current_states(settings))
