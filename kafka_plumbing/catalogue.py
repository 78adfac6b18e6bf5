"""The topic catalogue: the one place topic names are spelled.

Every name is ``<prefix>.<role>``; the prefix (``FS_TOPIC_PREFIX``) lets
several deployments, or test runs, share one cluster.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str

    def _name(self, role: str) -> str:
        return f"{self.prefix}.{role}"

    def events(self, source: str) -> str:
        """A source's log (a re-keyed log's source name is ``<parent>.by_<entity>``)."""
        return self._name(f"events.{source}")

    def features(self, source: str) -> str:
        """What was served for each applied event of ``source``: the feature log."""
        return self._name(f"features.{source}")

    @property
    def dlq(self) -> str:
        return self._name("dlq")

    @property
    def predictions(self) -> str:
        return self._name("predictions")

    @property
    def shadow_predictions(self) -> str:
        return self._name("predictions.shadow")

    @property
    def metrics(self) -> str:
        return self._name("metrics")

    @property
    def alerts(self) -> str:
        return self._name("alerts")

    @property
    def control(self) -> str:
        return self._name("control")

    @property
    def deployments(self) -> str:
        return self._name("deployments")

    @property
    def audit(self) -> str:
        return self._name("audit")

    @property
    def labels(self) -> str:
        return self._name("labels")

    @staticmethod
    def state_changelog(app_id: str, source: str) -> str:
        """All of a source's state (views, clock, seen ids): one flush is one record batch in it."""
        return f"{app_id}-state.{source}-changelog"
