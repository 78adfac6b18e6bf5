"""What a model scores and learns from: declared in the feature module as
``MODELS``, next to the views it uses."""
from __future__ import annotations

from dataclasses import dataclass

from tables.definitions import DefinitionError, Definitions
from tables.dsl import FeatureView

# Aggregations whose value is not one number or category cannot be a model input.
NON_SCALAR = {"last_k"}


@dataclass(frozen=True)
class ModelSpec:
    """A binary classifier scored on every event of ``source``.

    Inputs are the event's own fields and the views computed from the same
    log (``views``): exactly what the online path serves for that event, so a
    replay of the log rebuilds every training row bit for bit.  ``inputs``
    are views of *other* logs, read as of the event's time by the
    point-in-time rule once every partition they read has passed it
    (``tables.cross_source``): online, the event is held until then.  The
    label is ``label_field`` of the ``label_source`` event sharing ``join_key``."""

    name: str
    source: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    views: tuple[str, ...]
    label_source: str
    join_key: str
    label_field: str
    inputs: tuple[str, ...] = ()

    def feature_columns(self, definitions: Definitions) -> tuple[list[str], list[str], dict[str, str]]:
        """(numeric, categorical, feature -> view) with view features as ``view.feature``."""
        numeric = list(self.numeric)
        categorical = list(self.categorical)
        feature_views: dict[str, str] = {}
        for name in self.views + self.inputs:
            view = definitions.views.get(name)
            if view is None:
                raise DefinitionError(f"model {self.name}: unknown view {name!r}")
            if name in self.views and view.source.name != self.source:
                raise DefinitionError(
                    f"model {self.name}: view {name} is computed from {view.source.name}, not from the "
                    f"scored log {self.source}; name it in inputs= to read it as of the event's time"
                )
            if name in self.inputs and (view.source.parent or view.source.name) == self.source:
                raise DefinitionError(
                    f"model {self.name}: input {name} is computed from the scored log {self.source}; "
                    f"name it in views= (served with the event, no wait)"
                )
            for feat in view.features:
                if feat.agg.kind in NON_SCALAR:
                    continue
                column = f"{view.ref}.{feat.name}"
                feature_views[column] = view.ref
                field_type = view.source.fields.get(feat.agg.field or "", "float")
                if feat.agg.kind == "last" and field_type == "str":
                    categorical.append(column)
                else:
                    numeric.append(column)
        return numeric, categorical, feature_views


def input_views(spec: ModelSpec, definitions: Definitions) -> list[FeatureView]:
    """The views of other logs a model reads as of the scored event's time."""
    return [definitions.views[name] for name in spec.inputs]


def model_specs(definitions: Definitions) -> dict[str, ModelSpec]:
    import importlib

    module = importlib.import_module(definitions.module)
    specs = getattr(module, "MODELS", [])
    return {spec.name: spec for spec in specs}
