"""Online/offline skew, pure: what was served (a feature-log record, or the
view inputs of a prediction) compared with the offline engine's row for the
same log position, exactly (value and type, as the replay tests compare),
and the ``skew`` alerts and recoveries the comparison raises.  The reading of
logs is ``models.skew_audit``'s."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from models.alerts import Alert, AlertLedger

FEATURE_LOG = "feature_log"
PREDICTION = "prediction"
NOT_APPLIED = ("(event)", "applied")  # view, feature of a position online applied and the replay did not


@dataclass(frozen=True)
class Mismatch:
    source: str
    event_id: str
    partition: int
    offset: int
    record: str  # FEATURE_LOG, or PREDICTION
    view: str  # the view's ref
    feature: str
    online: Any
    offline: Any

    @property
    def event(self) -> str:
        return f"{self.event_id} ({self.source}:{self.partition}:{self.offset})"


def same(online: Any, offline: Any) -> bool:
    if isinstance(online, float) and isinstance(offline, float) and math.isnan(online) and math.isnan(offline):
        return True
    return type(online) is type(offline) and online == offline


@dataclass
class SkewReport:
    """One audit of one source."""

    source: str
    checked: dict[str, int] = field(default_factory=lambda: {FEATURE_LOG: 0, PREDICTION: 0})  # records
    mismatched: dict[str, int] = field(default_factory=lambda: {FEATURE_LOG: 0, PREDICTION: 0})  # records
    mismatches: list[Mismatch] = field(default_factory=list)
    compared: set[tuple[str, str]] = field(default_factory=set)  # (view, feature) compared at least once

    @property
    def rate(self) -> float:
        checked = sum(self.checked.values())
        return sum(self.mismatched.values()) / checked if checked else 0.0

    def compare(self, record: str, event_id: Any, partition: int, offset: int,
                served: dict[tuple[str, str], Any], row: dict[str, Any] | None) -> None:
        """``served``: (view ref, feature) -> the value served; ``row``: the replay's row for the position
        (``tables.replay``: ``<ref>.<feature>`` columns), None when the replay did not apply the event."""
        self.checked[record] += 1
        found: list[Mismatch] = []
        if row is None:
            found.append(Mismatch(self.source, str(event_id), partition, offset, record, *NOT_APPLIED, True, False))
        else:
            self.compared.add(NOT_APPLIED)
            for (view, feature), online in sorted(served.items()):
                self.compared.add((view, feature))
                column = f"{view}.{feature}"
                offline = row[column] if column in row else "(not defined)"
                if not same(online, offline):
                    found.append(Mismatch(self.source, str(event_id), partition, offset, record, view, feature,
                                          online, offline))
        if found:
            self.mismatched[record] += 1
            self.mismatches += found


def judge(report: SkewReport, ledger: AlertLedger, at: str, worker: str) -> list[Alert]:
    """One alert per (view, feature) with mismatches, naming its first mismatching event; a recovery for
    each one in alert that this audit compared and found equal everywhere."""
    by_feature: dict[tuple[str, str], list[Mismatch]] = {}
    for mismatch in report.mismatches:
        by_feature.setdefault((mismatch.view, mismatch.feature), []).append(mismatch)
    checked = sum(report.checked.values())
    out = []
    for (view, feature), found in sorted(by_feature.items()):
        first = found[0]
        series = f"skew:{report.source}:{view}:{feature}"
        changed = ledger.judge(series, True, at)
        if changed is None:
            continue
        out.append(Alert(
            kind="skew", metric="mismatches", series=series,
            where={"source": report.source, "view": view, "feature": feature, "event": first.event},
            value=float(len(found)), threshold=0.0, since=changed[0], recovered=False, at=at, worker=worker,
            detail=f"{first.record} of {first.event}: online {first.online!r}, offline {first.offline!r}; "
                   f"{len(found)} of {checked} sampled records differ on this feature",
            window_events=checked,
        ))
    prefix = f"skew:{report.source}:"
    for series in sorted(s for s in ledger.since if s.startswith(prefix)):
        view, feature = series[len(prefix):].rsplit(":", 1)
        if (view, feature) in by_feature or (view, feature) not in report.compared:
            continue
        since, _ = ledger.judge(series, False, at) or (at, True)
        out.append(Alert(
            kind="skew", metric="mismatches", series=series,
            where={"source": report.source, "view": view, "feature": feature, "event": ""},
            value=0.0, threshold=0.0, since=since, recovered=True, at=at, worker=worker,
            detail=f"0 of {checked} sampled records differ on this feature", window_events=checked,
        ))
    return out
