"""Loads a user's feature module (``--features`` / ``FS_FEATURES``)."""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass

from tables.dsl import FeatureView, Source
from tables.log_record import schema_headers
from tables.processor import SourceProcessor
from tables.schema import SchemaError


class DefinitionError(Exception):
    pass


@dataclass(frozen=True)
class Definitions:
    module: str
    sources: dict[str, Source]
    views: dict[str, FeatureView]  # ref -> view: every version of every view

    def versions(self, name: str) -> dict[int, FeatureView]:
        """Every defined version of the view ``name``, oldest first."""
        found = {v.version: v for v in self.views.values() if v.name == name}
        if not found:
            raise DefinitionError(f"unknown view {name!r}; known: {', '.join(sorted(self.names))}")
        return dict(sorted(found.items()))

    def version(self, name: str, version: int) -> FeatureView:
        versions = self.versions(name)
        if version not in versions:
            raise DefinitionError(
                f"view {name!r} has no version {version} in {self.module}; defined: {', '.join(map(str, versions))}"
            )
        return versions[version]

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(v.name for v in self.views.values()))

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

    def processor(self, source: str) -> SourceProcessor:
        """What applies ``source``'s log online: all its views, and the re-keyed logs it feeds."""
        return SourceProcessor(self.sources[source], self.views_of(source),
                               tuple(d.name for d in self.derived_of(source)))

    @property
    def published(self) -> list[Source]:
        """Sources users publish to (not the derived, re-keyed ones)."""
        return [s for s in self.sources.values() if s.parent is None]

    def schema_headers(self) -> dict[str, list[tuple[str, bytes]]]:
        """Published source with schema versions -> the header its events are sent with
        (the newest version).  A single-version source sends none: no header is version 1."""
        return {s.name: schema_headers(s.schema_version) for s in self.published if s.history}

    def key_fields(self) -> dict[str, str]:
        """Published source -> the field its events are keyed (partitioned) by."""
        return {source.name: source.key for source in self.published}


def load(module_name: str) -> Definitions:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DefinitionError(f"cannot import feature module {module_name!r}: {exc}") from exc
    except SchemaError as exc:  # an incompatible schema history: refused at start, named
        raise DefinitionError(f"{module_name}: {exc}") from exc
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
    seen: set[tuple[str, int]] = set()
    for view in views:
        if not isinstance(view, FeatureView):
            raise DefinitionError(f"{module_name}.VIEWS holds {view!r}, not a FeatureView")
        if view.source.name not in by_source:
            raise DefinitionError(f"view {view.name}: source {view.source.name!r} is not in SOURCES")
        if (view.name, view.version) in seen:
            raise DefinitionError(f"{module_name}: view {view.name!r} version {view.version} declared twice")
        seen.add((view.name, view.version))
    lowest = {name: min(v.version for v in views if v.name == name) for name, _ in seen}
    by_ref: dict[str, FeatureView] = {}
    for view in views:
        if view.entity != view.source.key:
            # A view by another entity reads its source re-keyed by that entity.
            derived = view.source.keyed_by(view.entity)
            by_source.setdefault(derived.name, derived)
            view = dataclasses.replace(view, source=derived)
        # The established version keeps the bare name, so adding a version
        # never renames the columns models and training sets already use.
        ref = view.name if view.version == lowest[view.name] else f"{view.name}@v{view.version}"
        by_ref[ref] = dataclasses.replace(view, ref=ref)
    return Definitions(module_name, by_source, by_ref)
