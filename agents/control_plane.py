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

Every record here, and every command, is signed with the control key
(``kafka_plumbing.signing``).  The control agent refuses a command without a
valid signature (audited as ``forged``, reason ``bad_signature``) or signed
too long ago (``stale``), and audits the others under the signed identity.  A
worker follows only deployments records with a valid signature: a forged one
is logged, counted, and answered by publishing again the last verified record
of its key, byte for byte, so compaction cannot leave the forgery as the
key's latest value.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import msgspec

import faust

from agents.control_records import (
    FILLING, LIVE, CommandAudit, DeploymentRecord, FillStatus, HistoryWritten, ModelCommand, ModelDeployment,
    ViewCutover, decode_deployment, encode, now_iso,
)
from kafka_plumbing import clients
from kafka_plumbing.clients import stop_consumer
from kafka_plumbing.settings import Settings
from kafka_plumbing.signing import AUDIT, CONTROL, DEPLOYMENTS, BadSignature, Headers, Signer
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
    # Checks every record read from the log (``follow_message``); None: nothing read is trusted.
    signer: Signer | None = None
    rejected: int = 0  # records read without a valid signature
    forged_latest: set[bytes] = field(default_factory=set)  # keys whose last record read is a forgery
    # key -> (value, headers) of the last verified record: what a forgery is answered with
    verified: dict[bytes, tuple[bytes, list[tuple[str, bytes]]]] = field(default_factory=dict)

    def follow_message(self, key: bytes | None, value: bytes | None, headers: Headers) -> bool:
        """One record read from the deployments log, followed only when its signature checks."""
        try:
            if self.signer is None:
                raise BadSignature("no control key to check it with")
            self.signer.verify(DEPLOYMENTS, key, value, headers)
        except BadSignature as exc:
            self.rejected += 1
            log.warning("ignoring a deployments record without a valid signature (key %r): %s", key, exc)
            self.on_rejected(key, str(exc))
            return False
        if key is not None and value is not None:
            self.verified[key] = (value, [(n, bytes(v)) for n, v in _header_items(headers)])
            self.forged_latest.discard(key)
        self.follow_record(value)
        return True

    def on_rejected(self, key: bytes | None, reason: str) -> None:
        """A worker counts the forgery and restores its key (``ControlPlane``)."""
        if key is not None:
            self.forged_latest.add(key)

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


def _header_items(headers: Headers) -> Sequence[tuple[str, bytes]]:
    if not headers:
        return []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


@dataclass
class ControlPlane(ControlState):
    """A worker's control state and the topics it writes."""

    settings: Settings | None = None
    topic: faust.TopicT | None = None  # fs.deployments
    audit: faust.TopicT | None = None
    control: faust.TopicT | None = None  # fs.control, for commands issued over HTTP
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    # Waiters for the follower to reach the log's current end (see ``caught_up``).
    sync_requests: list[asyncio.Future] = field(default_factory=list)
    count_rejected: Callable[[str], None] | None = None  # the worker's metric, by topic role
    # Told of every record followed: the worker's read process learns of it at once (agents.serving_snapshot).
    on_change: Callable[[], None] | None = None

    def follow(self, record: DeploymentRecord) -> None:
        super().follow(record)
        # While the log is first read, the worker is not ready: one snapshot follows, not one per record.
        if self.on_change is not None and self.loaded.is_set():
            self.on_change()

    def on_rejected(self, key: bytes | None, reason: str) -> None:
        if self.count_rejected is not None:
            self.count_rejected(DEPLOYMENTS)
        if key is not None:
            self.forged_latest.add(key)
            if self.loaded.is_set():  # while reading the log at start, a later record may restore it already
                self.restore_forged()

    def restore_forged(self) -> None:
        """Publish again, byte for byte, the last verified record of each key whose
        latest record is a forgery: compaction and a restart then bring back that
        state, not the forgery."""
        for key in sorted(self.forged_latest):
            held = self.verified.get(key)
            if held is not None and self.topic is not None:
                log.warning("restoring the last verified deployments record of %r", key)
                self.topic.send_soon(key=key, value=held[0], headers=held[1])
        self.forged_latest.clear()

    def signed(self, role: str, key: bytes, value: bytes, by: str | None = None) -> list[tuple[str, bytes]]:
        assert self.signer is not None, "a worker always holds the control key"
        return self.signer.headers(role, key, value, by=by)

    async def publish(self, record: DeploymentRecord) -> None:
        key, value = record.key.encode(), encode(record)
        await self.topic.send(key=key, value=value, headers=self.signed(DEPLOYMENTS, key, value))

    def publish_soon(self, record: DeploymentRecord) -> None:
        key, value = record.key.encode(), encode(record)
        self.topic.send_soon(key=key, value=value, headers=self.signed(DEPLOYMENTS, key, value))

    def audit_soon(self, key: bytes | None, record: msgspec.Struct) -> None:
        value = encode(record)
        self.audit.send_soon(key=key, value=value, headers=self.signed(AUDIT, key or b"", value))

    async def send_command(self, key: bytes, command: msgspec.Struct, by: str) -> None:
        """A command issued here on behalf of ``by`` (a token's name): the signature attests it."""
        value = encode(command)
        await self.control.send(key=key, value=value, headers=self.signed(CONTROL, key, value, by=by))

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


def judge_signed(plane: ControlState, check_model: ModelCheck | None, key: bytes | None, payload: bytes | None,
                 headers: Headers, max_age_s: float, now_ms: int | None = None) -> CommandAudit:
    """``apply_command`` for a record read from the control topic: only a command
    signed with the control key, recently, is judged; the audit names the signed
    identity (a command's own ``by`` is whatever its writer typed)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        if plane.signer is None:
            raise BadSignature("this worker has no control key")
        signed = plane.signer.verify(CONTROL, key, payload, headers)
    except BadSignature as exc:
        log.warning("control record without a valid signature refused (key %r): %s", key, exc)
        return _described(CommandAudit(at=now_iso(), by="forged", reason="bad_signature", detail=str(exc)), payload, key)
    age_s = (now - signed.at_ms) / 1000
    if abs(age_s) > max_age_s:
        log.warning("stale control command from %s refused: signed %.0fs ago", signed.by, age_s)
        return _described(CommandAudit(at=now_iso(), by=signed.by, reason="stale", detail=(
            f"signed {age_s:.0f}s ago; commands older than {max_age_s:.0f}s (FS_CONTROL_MAX_AGE_S) are refused")),
            payload, key)
    audit = apply_command(plane, check_model, payload)
    audit.by = signed.by
    return _described(audit, payload, key)


def _described(audit: CommandAudit, payload: bytes | None, key: bytes | None) -> CommandAudit:
    """The action and target of the command, as far as it can be read."""
    if audit.command is None:
        try:
            body = json.loads(payload or b"")
            audit.command = body if isinstance(body, dict) else None
        except ValueError:
            pass
    command = audit.command or {}
    if "view" in command:
        audit.action, audit.target = "cutover", f"view:{command.get('view')}"
    else:
        audit.action = _text(command.get("action")) or ("deploy" if "model" in command else None)
        audit.target = _text(command.get("model"))
    if audit.target is None and key is not None:
        audit.target = key.decode(errors="replace")
    return audit


def _model_command(command: dict[str, Any]) -> ModelCommand:
    try:
        return msgspec.convert(command, ModelCommand)
    except msgspec.ValidationError as exc:
        raise CommandError(f"not a model command: {exc}") from exc


def register_control_plane(app: faust.App, settings: Settings, definitions: Definitions, signer: Signer,
                           count_rejected: Callable[[str], None] | None = None) -> ControlPlane:
    """This worker's follower of the deployments log; ``signer`` holds the control key."""
    plane = ControlPlane(
        definitions, settings=settings, signer=signer, count_rejected=count_rejected,
        topic=app.topic(settings.topics.deployments, key_type=bytes, value_type=bytes),
        audit=app.topic(settings.topics.audit, key_type=bytes, value_type=bytes),
        control=app.topic(settings.topics.control, key_type=bytes, value_type=bytes),
    )

    @app.task
    async def follow_deployments() -> None:
        await follow(plane, app)

    return plane


def register_control_agent(app: faust.App, plane: ControlPlane, check_model: ModelCheck | None) -> None:
    """The agent that judges commands from the control topic."""
    @app.agent(plane.control, name="control")
    async def apply_commands(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                await plane.caught_up()
            except asyncio.TimeoutError:
                log.warning("deployments log not caught up; judging the command on what was read")
            message = event.message
            result = judge_signed(plane, check_model, message.key, message.value, message.headers,
                                  plane.settings.control_max_age_s)
            if result.reason in ("bad_signature", "stale") and plane.count_rejected is not None:
                plane.count_rejected(CONTROL)
            if result.result == "applied" and result.state is not None:
                await plane.publish(result.state)
                # Followed here at once too (again when read back, the same state): a read
                # this worker answers after the verdict serves what the verdict says.
                plane.follow(result.state)
            plane.audit_soon(message.key, result)


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
                    plane.follow_message(message.key, message.value, message.headers)
            if (waiting or not plane.loaded.is_set()) and all(
                [await consumer.position(tp) >= ends[tp] for tp in partitions]
            ):
                if not plane.loaded.is_set():
                    plane.loaded.set()
                    plane.restore_forged()
                for future in waiting:
                    if not future.done():
                        future.set_result(None)
                waiting.clear()
    finally:
        await stop_consumer(consumer)
