"""Issuing control commands from the command line (``featurestream models``,
``featurestream views cutover``) and reading the control state.

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


from agents.control_plane import ControlState, now_iso
from agents.scoring import desired_state
from kafka_plumbing import clients
from kafka_plumbing.log_reader import read_all, stop_consumer
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions


async def current_states(settings: Settings) -> dict[str, dict[str, Any]]:
    """model -> the last applied desired state."""
    states: dict[str, dict[str, Any]] = {}
    for message in await read_all(settings, settings.topics.audit):
        try:
            record = json.loads(message.value)
        except (TypeError, ValueError):
            continue
        if record.get("type") == "command" and record.get("result") == "applied":
            state = record.get("state") or record["command"]
            if "model" in state:  # not a view cut-over
                states[state["model"]] = state
    return states


async def issue(settings: Settings, model: str, action: str, version: int | None, by: str,
                wait_seconds: float = 30.0) -> dict[str, Any]:
    """A model command from its current state, and the workers' verdict."""
    states = await current_states(settings)
    command = desired_state(states.get(model), action, model, version)
    command.update({"model": model, "action": action, "by": by})
    return await issue_command(settings, model, command, wait_seconds)


async def issue_cutover(settings: Settings, view: str, version: int, by: str,
                        wait_seconds: float = 30.0) -> dict[str, Any]:
    """Make ``version`` the one that answers to the view's name, on every worker."""
    command = {"view": view, "version": version, "action": "cutover", "by": by}
    return await issue_command(settings, f"view:{view}", command, wait_seconds)


async def control_state(settings: Settings, definitions: Definitions) -> ControlState:
    """The deployments log as of now: models, view cut-overs, fill progress."""
    state = ControlState(definitions)
    for message in await read_all(settings, settings.topics.deployments):
        state.follow_record(message.value)
    return state


async def issue_command(settings: Settings, key: str, command: dict[str, Any],
                        wait_seconds: float = 30.0) -> dict[str, Any]:
    """Publish a command and wait for a worker's verdict (the audit record)."""
    command = {**command, "id": uuid.uuid4().hex, "at": now_iso()}
    audit = clients.consumer(settings, settings.topics.audit, auto_offset_reset="latest")
    await audit.start()
    try:
        for tp in audit.assignment():
            await audit.seek_to_end(tp)
            await audit.position(tp)
        producer = clients.producer(settings, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(settings.topics.control, key=key.encode(), value=json.dumps(command).encode())
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
