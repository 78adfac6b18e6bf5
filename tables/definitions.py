"""Loads a user's feature module (``--features`` / ``FS_FEATURES``)."""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass

from tables.dsl import FeatureView, Source


class DefinitionError(Exception):
    pass


@dataclass(frozen=True)
class Definitions:
    module: str
    sources: dict[str, Source]
    views: dict[str, FeatureView]

    def source(self, name: str) -> Source:
        try:
            return self.sources[name]
        except KeyError:
            raise DefinitionError(f"unknown source {name!r}; known: {', '.join(self.sources)}") from None

    def views_of(self, source: str) -> list[FeatureView]:
        return [v for v in self.views.values() if v.source.name == source]

    def derived_of(self, source: str) -> list[Source]:
        """Re-keyed logs fed from ``source`` (one per other entity of its views)."""
        return [s for s in self.sources.values() if s.parent == source]

    @property
    def published(self) -> list[Source]:
        """Sources users publish to (not the derived, re-keyed ones)."""
        return [s for s in self.sources.values() if s.parent is None]


def load(module_name: str) -> Definitions:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DefinitionError(f"cannot import feature module {module_name!r}: {exc}") from exc
    sources = getattr(module, "SOURCES", None)
    views = getattr(module, "VIEWS", None)
    if not isinstance(sources, list) or not isinstance(views, list):
        raise DefinitionError(f"{module_name} must define SOURCES and VIEWS lists")
    by_source: dict[str, Source] = {}
    for source in sources:
        if not isinstance(source, Source):
            raise DefinitionError(f"{module_name}.SOURCES holds {source!r}, not a Source")
        if source.name in by_source:
            raise DefinitionError(f"{module_name}: source {source.name!r} declared twice")
        by_source[source.name] = source
    by_name: dict[str, FeatureView] = {}
    for view in views:
        if not isinstance(view, FeatureView):
            raise DefinitionError(f"{module_name}.VIEWS holds {view!r}, not a FeatureView")
        if view.source.name not in by_source:
            raise DefinitionError(f"view {view.name}: source {view.source.name!r} is not in SOURCES")
        if view.name in by_name:
            raise DefinitionError(f"{module_name}: view {view.name!r} declared twice")
        if view.entity != view.source.key:
            # A view by another entity reads its source re-keyed by that entity.
            derived = view.source.keyed_by(view.entity)
            by_source.setdefault(derived.name, derived)
            view = dataclasses.replace(view, source=derived)
        by_name[view.name] = view
    return Definitions(module_name, by_source, by_name)
