"""Train a declared model from the logs: replay -> point-in-time frame -> H2O -> registry.
Shared by ``featurestream train`` and the demo."""
from __future__ import annotations

from pathlib import Path

from kafka_plumbing.settings import Settings
from models.registry import ModelVersion, Registry
from tables.model_spec import model_specs
from models.train import TrainConfig, train
from models.training_set import model_frame
from tables.definitions import Definitions


class UnknownModel(LookupError):
    pass


def train_from_log(
    settings: Settings, definitions: Definitions, name: str, ntrees: int = 50, nfolds: int = 0,
    events_dir: Path | None = None, max_depth: int = 5,
) -> ModelVersion:
    specs = model_specs(definitions)
    if name not in specs:
        raise UnknownModel(f"no model {name!r} in {definitions.module}.MODELS; known: {', '.join(specs) or 'none'}")
    spec = specs[name]
    numeric, categorical, feature_views = spec.feature_columns(definitions)
    frame = model_frame(settings, definitions, spec, events_dir)
    unlabelled = int(frame["label"].isna().sum())
    frame = frame[frame["label"].notna()]
    config = TrainConfig(
        name=spec.name, label="label", time_column="event_time",
        numeric_features=numeric, categorical_features=categorical, feature_views=feature_views,
        ntrees=ntrees, nfolds=nfolds, max_depth=max_depth,
    )
    extra = {
        "source": spec.source, "label_source": spec.label_source, "join_key": spec.join_key,
        "label_field": spec.label_field, "feature_module": definitions.module,
        "unlabelled_events": unlabelled,
        "view_state_keys": {view: definitions.views[view].state_key for view in spec.views + spec.inputs},
        "cross_source_inputs": list(spec.inputs),
    }
    versions = {view: definitions.views[view].version for view in spec.views + spec.inputs}
    return train(frame, config, Registry(settings.registry_dir), versions, extra_metadata=extra)
