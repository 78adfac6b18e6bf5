"""The records of the control plane, typed, with their one codec.

``fs.deployments`` (compacted) keeps the latest accepted state per key; each
record says what it is in ``kind``:

- ``ModelDeployment`` (``<model>``): which versions score, primary and shadow;
- ``ViewCutover`` (``view:<name>``): the version that answers to a view's name;
- ``FillStatus`` (``fill:<state_key>:<partition>``): whether a view version (or a
  re-keyed log, ``fwd:<log>``) is filled on a partition, and from which offset it is live;
- ``HistoryWritten`` (``history:<log>:<partition>``): a parent partition's
  history, re-keyed into a new log, through which offset.

Every record of these topics written by featurestream is signed with the
control key (``kafka_plumbing.signing``, in Kafka headers); readers follow only
records whose signature checks.

``fs.control`` carries ``ModelCommand`` and ``CutoverCommand``; ``fs.audit``
carries ``CommandAudit`` (every command, applied or refused) and
``SwitchAudit`` (the offset where a partition's primary model changed) and
``RetrainAudit`` (each step of champion/challenger retraining).

Model records written before ``kind`` existed have none: they decode as
``ModelDeployment``.  A record that does not decode is skipped by readers.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Union

import msgspec

LIVE, FILLING, FAILED = "live", "filling", "failed"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ModelDeployment(msgspec.Struct, tag_field="kind", tag="model", kw_only=True):
    model: str
    primary: int | None = None
    shadow: int | None = None
    previous: int | None = None
    command_id: str | None = None
    applied_at: str | None = None

    @property
    def key(self) -> str:
        return self.model


class ViewCutover(msgspec.Struct, tag_field="kind", tag="view", kw_only=True):
    view: str
    version: int
    state_key: str
    previous: int | None = None
    command_id: str | None = None
    applied_at: str | None = None

    @property
    def key(self) -> str:
        return f"view:{self.view}"


class FillStatus(msgspec.Struct, tag_field="kind", tag="fill", kw_only=True):
    state_key: str  # a view version's state key, or ``fwd:<log>`` for a re-keyed log
    source: str
    partition: int
    status: str  # LIVE, FILLING or FAILED
    through: int | None = None  # last offset the fill has taken
    end: int | None = None  # end of the log when the fill started
    live_from: int | None = None
    detail: str | None = None
    worker: str | None = None
    at: str | None = None
    view: str | None = None
    version: int | None = None
    ref: str | None = None
    derived: str | None = None  # the re-keyed log, for ``fwd:`` entries

    @property
    def key(self) -> str:
        return fill_key(self.state_key, self.partition)


class HistoryWritten(msgspec.Struct, tag_field="kind", tag="history", kw_only=True):
    derived: str
    partition: int
    parent: str | None = None
    through: int  # last parent offset whose applied events are in the re-keyed log
    records: int = 0
    at: str | None = None

    @property
    def key(self) -> str:
        return history_key(self.derived, self.partition)


DeploymentRecord = Union[ModelDeployment, ViewCutover, FillStatus, HistoryWritten]


def fill_key(state_key: str, partition: int) -> str:
    return f"fill:{state_key}:{partition}"


def history_key(derived: str, partition: int) -> str:
    return f"history:{derived}:{partition}"


def encode(record: msgspec.Struct) -> bytes:
    return msgspec.json.encode(record)


def _with_kind(body: Any) -> Any:
    if isinstance(body, dict) and "kind" not in body and "model" in body:
        return {**body, "kind": "model"}  # written before records said what they are
    return body


def decode_deployment(raw: bytes | None) -> DeploymentRecord:
    """Raises ``msgspec.DecodeError`` (a ``ValueError``) or ``msgspec.ValidationError`` for anything else."""
    return msgspec.convert(_with_kind(msgspec.json.decode(raw or b"")), DeploymentRecord)


class ModelCommand(msgspec.Struct, kw_only=True):
    """The desired state of a model (absolute, so compaction keeps what matters)."""

    model: str
    action: str = "deploy"
    primary: int | None = None
    shadow: int | None = None
    previous: int | None = None
    id: str | None = None
    by: str | None = None
    at: str | None = None


class CutoverCommand(msgspec.Struct, kw_only=True):
    view: str
    version: int
    action: str = "cutover"
    id: str | None = None
    by: str | None = None
    at: str | None = None


class CommandAudit(msgspec.Struct, tag_field="type", tag="command", kw_only=True):
    at: str
    result: str = "refused"  # applied, refused, or (on the command line) pending
    command: dict[str, Any] | None = None  # as received: a refused command may be anything
    state: DeploymentRecord | None = None
    reason: str | None = None
    # Who acted: the identity a valid signature or a bearer token attests, never
    # the command's own ``by``; ``forged`` for a record without a valid signature.
    by: str | None = None
    action: str | None = None  # deploy, rollback, shadow, unshadow, promote, cutover
    target: str | None = None  # the model, or ``view:<name>``
    detail: str | None = None  # what a coded reason (bad_signature, stale, unauthorized, ...) means here


class SwitchAudit(msgspec.Struct, tag_field="type", tag="switch", kw_only=True):
    model: str
    to: int
    topic: str
    partition: int
    first_offset: int
    at: str
    previous: int | None = msgspec.field(default=None, name="from")


class RetrainAudit(msgspec.Struct, tag_field="type", tag="retrain", kw_only=True):
    """A step of ``featurestream retrain``: ``trained`` (a challenger published to the registry),
    ``shadowed`` (deployed as shadow of the champion), ``decided`` (the rule's verdict on live
    quality: promote, retire or wait), ``promoted`` or ``retired`` (the command's verdict)."""

    step: str
    model: str
    at: str
    by: str | None = None  # FS_ADMIN_NAME of the command line that took the step (the signature attests it)
    champion: int | None = None
    challenger: int | None = None
    result: str = "ok"  # ok; for commands the workers' verdict (applied, refused, pending); for decided the outcome
    reason: str | None = None
    metric: str | None = None
    margin: float | None = None
    min_labelled: int | None = None
    labelled: int | None = None  # labelled events both versions scored
    champion_value: float | None = None
    challenger_value: float | None = None
    holdout_auc: float | None = None  # trained: the challenger's offline evaluation
    training_rows: int | None = None


AuditRecord = Union[CommandAudit, SwitchAudit, RetrainAudit]


def decode_audit(raw: bytes | None) -> AuditRecord:
    body = msgspec.json.decode(raw or b"")
    if isinstance(body, dict) and body.get("state") is not None:
        body = {**body, "state": _with_kind(body["state"])}
    return msgspec.convert(body, AuditRecord)
