"""The control plane every worker shares: one compacted log of accepted states.

``fs.deployments`` (compacted) holds the latest accepted state per key, as
the typed records of ``agents.control_records``: model deployments (see
``agents.scoring``), view cut-overs, fill status per view version and
partition (see ``agents.backfill``), and re-keyed histories written by
``featurestream backfill``.

Commands arrive on ``fs.control``; the control agent checks each one, writes
the accepted state here and an audit record either way, so a refused command
never changes what is served.  Every worker follows this log in full, without
a consumer group, into its own ``ControlPlane``: a change reaches every worker
within moments (a Faust GlobalTable did not propagate beyond its writer).
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import msgspec

import faust

from agents.control_records import (
    FILLING, LIVE, CommandAudit, DeploymentRecord, FillStatus, HistoryWritten, ModelCommand, ModelDeployment,
    ViewCutover, decode_deployment, encode, now_iso,
)
from kafka_plumbing import clients
from kafka_plumbing.clients import stop_consumer
from kafka_plumbing.settings import Settings
from tables.definitions import DefinitionError, Definitions
from tables.dsl import FeatureView
from tables.processor import forward_key

log = logging.getLogger(__name__)

class CommandError(ValueError):
    """A control command that cannot be applied; the message says why."""


@dataclass
class ControlState:
    """What the deployments log says, as plain data (workers and the command line)."""

    definitions: Definitions
    models: dict[str, ModelDeployment] = field(default_factory=dict)
    views: dict[str, ViewCutover] = field(default_factory=dict)  # view name -> accepted cut-over
    fills: dict[tuple[str, int], FillStatus] = field(default_factory=dict)  # (state_key, partition) -> status
    histories: dict[tuple[str, int], HistoryWritten] = field(default_factory=dict)  # (derived, partition) -> written

    def follow_record(self, value: bytes | None) -> None:
        """One record of the deployments log into this worker's snapshot."""
        try:
            record = decode_deployment(value)
        except (ValueError, msgspec.ValidationError) as exc:
            log.warning("skipping an unreadable deployments record: %s", exc)
            return
        self.follow(record)

    def follow(self, record: DeploymentRecord) -> None:
        if isinstance(record, ViewCutover):
            self.views[record.view] = record
        elif isinstance(record, FillStatus):
            self.fills[(record.state_key, record.partition)] = record
        elif isinstance(record, HistoryWritten):
            self.histories[(record.derived, record.partition)] = record
        else:
            self.models[record.model] = record

    def serving(self, name: str) -> FeatureView:
        """The version answering to ``name``: the cut-over one, else the established one."""
        versions = self.definitions.versions(name)
        cutover = self.views.get(name)
        chosen = None if cutover is None else cutover.version
        return versions.get(chosen) or next(iter(versions.values()))

    def fill_status(self, view: FeatureView) -> dict[int, FillStatus]:
        """partition -> last fill status of ``view``, for every partition of its
        source that has ever held an event (the others start every view live).
        A view on a re-keyed log is filling everywhere until every partition of
        the parent feeds that log (its history re-keyed first)."""
        status = self._status(view.state_key, view.source.name)
        if view.source.parent is not None:
            missing = self.unfed(view.source.name, view.source.parent)
            if missing:
                detail = f"{view.source.parent} partitions {missing} do not feed {view.source.name} yet"
                status = {p: msgspec.structs.replace(s, status=FILLING, detail=detail) if s.status == LIVE else s
                          for p, s in status.items()} or {-1: FillStatus(state_key=view.state_key, source=view.source.name,
                                                                         partition=-1, status=FILLING, detail=detail)}
        return status

    def unfed(self, derived: str, parent: str) -> list[int]:
        """Partitions of ``parent`` whose worker said they do not feed ``derived`` yet."""
        key = forward_key(derived)
        return sorted(p for (k, p), s in self.fills.items()
                      if k == key and s.source == parent and s.status != LIVE)

    def _status(self, key: str, source: str) -> dict[int, FillStatus]:
        partitions = {p for (_, p), s in self.fills.items() if s.source == source}
        return {
            p: self.fills.get((key, p)) or FillStatus(state_key=key, source=source, partition=p, status=FILLING)
            for p in sorted(partitions)
        }

    def check_cutover(self, command: dict[str, Any]) -> ViewCutover:
        name, version = command.get("view"), command.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise CommandError("version must be an integer")
        if not isinstance(name, str):
            raise CommandError("view must be a view name")
        try:
            view = self.definitions.version(name, version)
        except DefinitionError as exc:
            raise CommandError(str(exc)) from exc
        unfilled = {p: s.status for p, s in self.fill_status(view).items() if s.status != LIVE}
        if unfilled:
            raise CommandError(
                f"{name} v{version} is not filled on every partition yet ({unfilled}); "
                f"wait for `featurestream backfill {name} --version {version}` to finish"
            )
        return ViewCutover(view=name, version=version, state_key=view.state_key, previous=self.serving(name).version,
                           command_id=_text(command.get("id")), applied_at=now_iso())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass
class ControlPlane(ControlState):
    """A worker's control state and the topics it writes."""

    settings: Settings | None = None
    topic: faust.TopicT | None = None  # fs.deployments
    audit: faust.TopicT | None = None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    # Waiters for the follower to reach the log's current end (see ``caught_up``).
    sync_requests: list[asyncio.Future] = field(default_factory=list)

    async def caught_up(self, timeout: float = 10.0) -> None:
        """Until this worker has read everything in the deployments log as of now:
        a cut-over is judged on the fill records already written, not on a lagging copy."""
        future = asyncio.get_running_loop().create_future()
        self.sync_requests.append(future)
        await asyncio.wait_for(future, timeout)


ModelCheck = Callable[[ModelCommand], ModelDeployment]  # a model command -> the state it asks for


def apply_command(plane: ControlState, check_model: ModelCheck | None, payload: bytes | None) -> CommandAudit:
    """Check one control record: the audit record, with the state to publish when applied.
    ``check_model`` judges model commands (None: the feature module declares no models)."""
    audit = CommandAudit(at=now_iso())
    try:
        command = json.loads(payload or b"")
        if not isinstance(command, dict):
            raise CommandError("a command is a JSON object")
        audit.command = command
        if "view" in command:
            audit.state = plane.check_cutover(command)
        elif check_model is None:
            raise CommandError(f"{plane.definitions.module} declares no MODELS")
        else:
            audit.state = check_model(_model_command(command))
        audit.result = "applied"
    except (CommandError, ValueError) as exc:
        audit.result = "refused"
        audit.reason = str(exc)
        log.warning("control command refused: %s", exc)
    return audit


def _model_command(command: dict[str, Any]) -> ModelCommand:
    try:
        return msgspec.convert(command, ModelCommand)
    except msgspec.ValidationError as exc:
        raise CommandError(f"not a model command: {exc}") from exc


def register_control_plane(app: faust.App, settings: Settings, definitions: Definitions) -> ControlPlane:
    """This worker's follower of the deployments log."""
    plane = ControlPlane(
        definitions, settings=settings,
        topic=app.topic(settings.topics.deployments, key_type=bytes, value_type=bytes),
        audit=app.topic(settings.topics.audit, key_type=bytes, value_type=bytes),
    )

    @app.task
    async def follow_deployments() -> None:
        await follow(plane, app)

    return plane


def register_control_agent(app: faust.App, plane: ControlPlane, check_model: ModelCheck | None) -> None:
    """The agent that judges commands from the control topic."""
    control = app.topic(plane.settings.topics.control, key_type=bytes, value_type=bytes)

    @app.agent(control, name="control")
    async def apply_commands(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                await plane.caught_up()
            except asyncio.TimeoutError:
                log.warning("deployments log not caught up; judging the command on what was read")
            result = apply_command(plane, check_model, event.message.value)
            if result.result == "applied" and result.state is not None:
                await plane.topic.send(key=result.state.key.encode(), value=encode(result.state))
            plane.audit.send_soon(key=event.message.key, value=encode(result))


async def follow(plane: ControlPlane, app: faust.App) -> None:
    """Read the whole deployments log into ``plane``, then keep following it;
    ``plane.loaded`` is set after the first full read, and ingest waits for
    it so no event is scored, or left unscored, by a stale state."""
    settings = plane.settings
    consumer = clients.consumer(settings, settings.topics.deployments, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        waiting: list[asyncio.Future] = []
        while not app.should_stop:
            if plane.sync_requests:
                waiting += plane.sync_requests
                plane.sync_requests.clear()
                ends = await consumer.end_offsets(partitions)
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    plane.follow_record(message.value)
            if (waiting or not plane.loaded.is_set()) and all(
                [await consumer.position(tp) >= ends[tp] for tp in partitions]
            ):
                plane.loaded.set()
                for future in waiting:
                    if not future.done():
                        future.set_result(None)
                waiting.clear()
    finally:
        await stop_consumer(consumer)
