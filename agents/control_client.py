"""Issuing control commands from the command line (``featurestream models``,
``featurestream views cutover``) and reading the control state.

The current state of a model is the last state the workers accepted, read
from the deployments topic (only records signed with the control key); the
new desired state is computed from it, signed as ``FS_ADMIN_NAME`` and
published to the compacted control topic.  The command then waits for a
worker's signed verdict on the audit topic.  Every function here needs the
control key (``kafka_plumbing.signing.control_key``); without one it raises
``ControlKeyError``."""
from __future__ import annotations

import asyncio
import time
import uuid

import msgspec

from agents.control_plane import ControlState
from agents.control_records import (
    CommandAudit, CutoverCommand, ModelCommand, ModelDeployment, decode_audit, encode, now_iso,
)
from kafka_plumbing import signing
from agents.scoring import desired_state
from kafka_plumbing import clients
from kafka_plumbing.clients import stop_consumer
from kafka_plumbing.log_reader import read_all, topic_partitions
from kafka_plumbing.settings import Settings
from tables.definitions import Definitions


def admin_signer(settings: Settings) -> signing.Signer:
    """The command line's signer: the control key, as ``FS_ADMIN_NAME``."""
    return signing.signer(settings, settings.admin_name)


async def current_states(settings: Settings) -> dict[str, ModelDeployment]:
    """model -> the last accepted state (verified records of the deployments log)."""
    state = ControlState(Definitions("", {}, {}), signer=admin_signer(settings))  # model states need no views
    for message in await read_all(settings, settings.topics.deployments):
        state.follow_message(message.key, message.value, message.headers)
    return state.models


async def issue(settings: Settings, model: str, action: str, version: int | None, by: str,
                wait_seconds: float = 30.0) -> CommandAudit:
    """A model command from its current state, and the workers' verdict."""
    states = await current_states(settings)
    command = desired_state(states.get(model), action, model, version)
    command.by = by  # informational: the audit names the signed identity
    return await issue_command(settings, model, command, wait_seconds)


async def issue_cutover(settings: Settings, view: str, version: int, by: str,
                        wait_seconds: float = 30.0) -> CommandAudit:
    """Make ``version`` the one that answers to the view's name, on every worker."""
    command = CutoverCommand(view=view, version=version, by=by)
    return await issue_command(settings, f"view:{view}", command, wait_seconds)


async def control_state(settings: Settings, definitions: Definitions) -> ControlState:
    """The deployments log as of now: models, view cut-overs, fill progress."""
    state = ControlState(definitions, signer=admin_signer(settings))
    for message in await read_all(settings, settings.topics.deployments):
        state.follow_message(message.key, message.value, message.headers)
    return state


async def issue_command(settings: Settings, key: str, command: ModelCommand | CutoverCommand,
                        wait_seconds: float = 30.0) -> CommandAudit:
    """Publish a signed command and wait for a worker's verdict (a signed audit record)."""
    signer = admin_signer(settings)
    command = msgspec.structs.replace(command, id=uuid.uuid4().hex, at=now_iso())
    value = encode(command)
    audit = clients.consumer(settings)
    await audit.start()
    try:
        # Positioned at the end before the command goes out, or a fast verdict
        # lands before a lazily assigned consumer starts reading, and is missed.
        partitions = await topic_partitions(audit, settings.topics.audit)
        audit.assign(partitions)
        await audit.seek_to_end(*partitions)
        for tp in partitions:
            await audit.position(tp)
        await send_signed(settings, signer, settings.topics.control, signing.CONTROL, key, value)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            batch = await audit.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    try:
                        signer.verify(signing.AUDIT, message.key, message.value, message.headers)
                        record = decode_audit(message.value)
                    except (signing.BadSignature, ValueError, msgspec.ValidationError):
                        continue  # a verdict only a worker holding the key could have written
                    if isinstance(record, CommandAudit) and (record.command or {}).get("id") == command.id:
                        return record
        return CommandAudit(at=now_iso(), command=msgspec.to_builtins(command), result="pending",
                            reason=f"no worker answered within {wait_seconds:.0f}s (is a worker running?)")
    finally:
        await stop_consumer(audit)


def issue_sync(settings: Settings, model: str, action: str, version: int | None, by: str) -> CommandAudit:
    return asyncio.run(issue(settings, model, action, version, by))


def states_sync(settings: Settings) -> dict[str, ModelDeployment]:
    return asyncio.run(current_states(settings))


async def publish_audit(settings: Settings, key: str, record: msgspec.Struct) -> None:
    """An audit record the command line writes itself (``RetrainAudit``), signed as ``FS_ADMIN_NAME``."""
    await send_signed(settings, admin_signer(settings), settings.topics.audit, signing.AUDIT, key, encode(record))


async def send_signed(settings: Settings, signer: signing.Signer, topic: str, role: str, key: str,
                      value: bytes) -> None:
    producer = clients.producer(settings, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key.encode(), value=value,
                                     headers=signer.headers(role, key.encode(), value))
    finally:
        await producer.stop()
