"""Schema versions of a source: the compatibility rules, and the one upgrade of
an older event to the newest schema.  Pure: no Faust, no Kafka.

A source's ``fields``/``required`` are its newest schema; ``history`` holds
the older ones (versions 1..N-1).  An event says which version it was written
in (the ``fs-schema`` header, see ``log_record``; none: version 1).  An older
event is checked against its own version, then upgraded here, then judged by
the newest definition: the worker and the replay both call ``validation``,
which calls ``upgrade``, so they decide and compute the same on every event.

Compatible, from any older version to the newest:

- a field added (optional, or with a default in ``Source.defaults``);
- a field removed (an older event's value is dropped);
- a type widened: ``int`` -> ``float`` (the value is carried unchanged: a JSON
  integer is a valid float, and a newest-version producer sending ``5`` gives
  the same value);
- a field renamed, declared on the older version: ``renamed={"old": "new"}``.

Anything else is refused when the definitions load (``SchemaError``): a
narrowed or changed type, a field required in the newest version that older
events may lack and that has no default, a renamed or retyped id, time or key
field, a rename onto a field that is kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

FIELD_TYPES = ("str", "float", "int", "time")
# (old, new): every value the old type holds is a value of the new one, as is.
WIDENINGS = frozenset({("int", "float")})


class Source(Protocol):
    """What of ``tables.dsl.Source`` the rules read (dsl imports this module, not the reverse)."""

    name: str
    fields: dict[str, str]
    required: tuple[str, ...]
    key: str
    time_field: str
    id_field: str
    parent: str | None
    history: tuple["SchemaVersion", ...]
    defaults: dict[str, Any]

    @property
    def required_fields(self) -> tuple[str, ...]: ...


class SchemaError(ValueError):
    """An incompatible or malformed schema history, found when the definitions load."""


@dataclass(frozen=True)
class SchemaVersion:
    """An older shape of a source's events.  ``renamed``: a field of this version
    -> its name in the next version (the rename happened in that version)."""

    version: int
    fields: dict[str, str]
    required: tuple[str, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Upgrade:
    """How an event of one older version is checked and becomes a newest-version event."""

    version: int
    fields: dict[str, str]  # the older version's: its events are type-checked against them
    required: tuple[str, ...]  # present (not null) in every event of that version
    carried: tuple[tuple[str, str], ...]  # (name in the older version, name in the newest)
    defaults: tuple[tuple[str, Any], ...]  # newest fields the event may lack -> value it gets
    # Undeclared fields pass through as they are, except these names: the older
    # version's own fields (carried or dropped) and the newest's (an older
    # event's undeclared "x" never meant the "x" a later version declares).
    shadowed: frozenset[str]


@dataclass(frozen=True)
class Run:
    """Consecutive versions in which a newest field had one name and type (None: absent)."""

    first_version: int
    name: str | None
    type: str | None


def upgrade(plan: Upgrade, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` (valid in ``plan.version``) as the newest schema reads it.  Deterministic:
    the output depends only on the record and the definitions."""
    out = {name: value for name, value in record.items() if name not in plan.shadowed}
    for old, new in plan.carried:
        if old in record:
            out[new] = record[old]
    for name, value in plan.defaults:
        # Absent or null: a null in a field the newest version requires would
        # otherwise reject an event its own version accepted.
        if out.get(name) is None:
            out[name] = value
    return out


def _versions(source: Source) -> list[SchemaVersion]:
    newest = SchemaVersion(len(source.history) + 1, source.fields, source.required)
    return [*source.history, newest]


def _carry(versions: list[SchemaVersion], start: int) -> dict[str, str]:
    """Fields of ``versions[start]`` that survive to the newest: old name -> newest name."""
    names = {name: name for name in versions[start].fields}
    for step in range(start, len(versions) - 1):
        renamed, following = versions[step].renamed, versions[step + 1].fields
        names = {old: renamed.get(cur, cur) for old, cur in names.items() if renamed.get(cur, cur) in following}
    return names


def _default_ok(type_: str, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if type_ == "str":
        return isinstance(value, str)
    if type_ == "int":
        return isinstance(value, int)
    if type_ == "float":
        return isinstance(value, (int, float)) and math.isfinite(value)
    return False  # a time default would date old events at one instant: never what is meant


def plans(source: Source) -> dict[int, Upgrade]:
    """Checks the history and compiles one upgrade per older version; raises ``SchemaError``."""
    versions = _versions(source)
    newest = versions[-1]
    where = f"source {source.name}"
    for number, version in enumerate(versions[:-1], start=1):
        if version.version != number:
            raise SchemaError(f"{where}: history must list versions 1..{len(versions) - 1} in order, "
                              f"found version {version.version} at position {number}")
        _check_shape(where, version, versions[number])
    structural = (source.id_field, source.time_field) + ((source.key,) if source.parent is None else ())
    for name, value in source.defaults.items():
        if name not in newest.fields:
            raise SchemaError(f"{where}: default for {name!r}, which is not a field of version {newest.version}")
        if name in structural:
            raise SchemaError(f"{where}: {name!r} is the id, time or key field and cannot have a default")
        if not _default_ok(newest.fields[name], value):
            raise SchemaError(f"{where}: default {value!r} for {name!r} is not a {newest.fields[name]}")
    # A re-keyed log's records were accepted on the parent's log, and only those
    # holding the entity are forwarded: the parent's history was judged already.
    required = set(source.required_fields) if source.parent is None else set()
    compiled: dict[int, Upgrade] = {}
    for index, old in enumerate(versions[:-1]):
        label = f"{where}: version {old.version} -> {newest.version}"
        carried = _carry(versions, index)
        origin = {new: prior for prior, new in carried.items()}
        for name in structural:
            if origin.get(name) != name or old.fields[name] != newest.fields[name]:
                raise SchemaError(f"{label}: field {name!r} (id, time or key) must keep its name and type "
                                  f"in every version")
        for new, prior in origin.items():
            before, after = old.fields[prior], newest.fields[new]
            if before != after and (before, after) not in WIDENINGS:
                kind = "narrows" if (after, before) in WIDENINGS else "changes"
                raise SchemaError(f"{label}: field {new!r}{f' (was {prior!r})' if prior != new else ''} "
                                  f"{kind} type {before} to {after}; compatible: the same type or int -> float")
        old_required = set(old.required) | set(structural)
        for name in sorted(required):
            if name in source.defaults:
                continue
            if name not in origin:
                raise SchemaError(f"{label}: field {name!r} is required in version {newest.version} and absent "
                                  f"from version {old.version}: make it optional or give it a default "
                                  f"(Source.defaults)")
            if origin[name] not in old_required:
                raise SchemaError(f"{label}: field {name!r} is required in version {newest.version} and optional "
                                  f"in version {old.version}: keep it optional or give it a default")
        compiled[old.version] = Upgrade(
            version=old.version,
            fields=old.fields,
            required=tuple(dict.fromkeys((*structural, *old.required))),
            carried=tuple(sorted(carried.items())),
            defaults=tuple(sorted(source.defaults.items())),
            shadowed=frozenset(old.fields) | frozenset(newest.fields),
        )
    return compiled


def _check_shape(where: str, version: SchemaVersion, following: SchemaVersion) -> None:
    label = f"{where}: version {version.version}"
    for name, type_ in version.fields.items():
        if type_ not in FIELD_TYPES:
            raise SchemaError(f"{label}: field {name!r} has unknown type {type_!r}")
    for name in version.required:
        if name not in version.fields:
            raise SchemaError(f"{label}: required {name!r} is not a field of that version")
    targets: list[str] = []
    for old, new in version.renamed.items():
        if old not in version.fields:
            raise SchemaError(f"{label}: renames {old!r}, which is not a field of that version")
        if new not in following.fields:
            raise SchemaError(f"{label}: renames {old!r} to {new!r}, which is not a field of version "
                              f"{following.version}")
        kept = new in version.fields and new not in version.renamed
        if kept or new in targets:
            raise SchemaError(f"{label}: renames {old!r} to {new!r}, a name another field of version "
                              f"{version.version} also takes to version {following.version}")
        targets.append(new)


def lineage(source: Source, names: list[str]) -> dict[str, Any]:
    """For each of ``names`` (newest fields) that changed over the versions, how
    older events come to hold it: its runs of (first version, name, type) and
    its default.  Unchanged fields are left out, so a view reading only them
    keeps its fingerprint when a version is added."""
    versions = _versions(source)
    origins = [{new: old for old, new in _carry(versions, index).items()} for index in range(len(versions))]
    out: dict[str, Any] = {}
    for name in sorted(set(names)):
        runs: list[Run] = []
        for version, origin in zip(versions, origins):
            prior = origin.get(name)
            run = Run(version.version, prior, None if prior is None else version.fields[prior])
            if not runs or (runs[-1].name, runs[-1].type) != (run.name, run.type):
                runs.append(run)
        if len(runs) > 1 or name in source.defaults:
            out[name] = {"runs": [[r.first_version, r.name, r.type] for r in runs],
                         "default": source.defaults.get(name)}
    return out
