"""Baselines from the registry, delayed labels and A/B analysis with real trained models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from monitoring_support import END, customers, log_traffic

from lakeloom import Workspace
from lakeloom.monitoring import MonitorContext
from lakeloom.monitoring.ab import ab_report

DAY = timedelta(days=1)
INPUTS = ["customer_id", "tenure", "spend", "plan", "email_opt_in"]


def labelled(n: int, seed: int) -> pd.DataFrame:
    """Customers with a churn label that depends on tenure, spend and plan."""
    frame = customers(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    score = -0.06 * frame.tenure + 0.04 * frame.spend + (frame.plan == "basic") * 1.0 - 1.0
    frame["churned"] = (score + rng.normal(0, 0.7, n) > 0).astype("int64")
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """churn_model v1 (trained on shuffled labels: poor) in production, v2 (good) challenger,
    and a day of 50/50 traffic with their real predictions; labels in raw.churn_labels."""
    ws = Workspace.init(tmp_path_factory.mktemp("models") / "ws")
    good = labelled(3000, seed=1)
    bad = good.copy()
    bad["churned"] = np.random.default_rng(9).permutation(bad["churned"].to_numpy())
    ws.tables.write("ml.training", good)
    ws.tables.write("ml.shuffled", bad)
    runs = {}
    for table in ("ml.shuffled", "ml.training"):
        result = ws.train(
            table, label="churned", experiment="churn", models=["logistic_regression"]
        )
        runs[table] = result.best().run_id
    ws.registry.register(runs["ml.shuffled"], name="churn_model")
    ws.registry.register(runs["ml.training"], name="churn_model")
    ws.registry.promote("churn_model", 1, "production")
    ws.registry.promote("churn_model", 2, "challenger")
    traffic = labelled(2400, seed=7)
    routes = ["champion" if i % 2 == 0 else "challenger" for i in range(len(traffic))]
    predictions = {}
    for route, version in (("champion", 1), ("challenger", 2)):
        model = ws.registry.load_model("churn_model", version=version)
        predictions[route] = np.asarray(model.predict(traffic[INPUTS])).astype(float)
    logged = [float(predictions[r][i]) for i, r in enumerate(routes)]
    log_traffic(
        ws,
        "churn",
        traffic,
        start=END - DAY,
        span=DAY,
        predictions=logged,
        routes=routes,
        versions={"champion": 1, "challenger": 2},
    )
    ws.tables.write("raw.churn_labels", traffic[["customer_id", "churned"]])
    ws.tables.write("ml.traffic", traffic.assign(route=routes, prediction=logged))
    try:
        yield ws
    finally:
        ws.close()


def test_a_registered_models_training_table_is_the_baseline(trained: Workspace) -> None:
    result = trained.monitor(endpoint="churn", baseline="models:/churn_model@challenger")
    assert result.baseline["table"] == "ml.training"
    assert result.baseline["version"] == 0
    assert result.baseline["label"] == "churned"
    assert result.rows["baseline"] == 3000
    columns = {f.column for f in result.findings}
    assert "churned" not in columns and {"spend", "plan", "tenure"} <= columns
    assert not [f for f in result.drifted if f.kind == "feature"]


def test_delayed_labels_give_quality_per_model_version(trained: Workspace) -> None:
    result = trained.monitor(
        endpoint="churn",
        baseline="ml.training",
        labels="raw.churn_labels",
        join_key="customer_id",
        name="labels",
    )
    by_version = {p["model_version"]: p for p in result.performance}
    traffic = trained.engine.to_arrow(trained.tables.read("ml.traffic")).to_pandas()
    for version, route in ((1, "champion"), (2, "challenger")):
        rows = traffic[traffic.route == route]
        accuracy = float(((rows.prediction >= 0.5).astype(int) == rows.churned).mean())
        assert by_version[version]["rows"] == len(rows)
        assert by_version[version]["accuracy"] == pytest.approx(accuracy)
    assert by_version[2]["accuracy"] > by_version[1]["accuracy"] + 0.1


def test_confidence_estimates_accuracy_before_labels(trained: Workspace) -> None:
    rng = np.random.default_rng(3)
    frame = customers(1500, seed=30)
    p = rng.beta(2, 2, len(frame))
    log_traffic(
        trained, "proba", frame, start=END - DAY, span=DAY, predictions=[float(x) for x in p]
    )
    result = trained.monitor(endpoint="proba", baseline="ml.training", estimate_performance=True)
    (estimate,) = [e for e in result.performance if e.get("method") == "confidence"]
    assert estimate["estimated_accuracy"] == pytest.approx(np.maximum(p, 1 - p).mean(), abs=0.01)
    classes = trained.monitor(
        endpoint="churn", baseline="ml.training", estimate_performance=True, name="classes"
    )
    assert not [e for e in classes.performance if e.get("method") == "confidence"]


def test_ab_report_recommends_and_promotes_through_the_gate(trained: Workspace) -> None:
    ctx = MonitorContext(trained.tables, trained.engine, trained.tracking)
    report = ab_report(
        ctx, "churn", metric="accuracy", labels="raw.churn_labels", join_key="customer_id"
    )
    traffic = trained.engine.to_arrow(trained.tables.read("ml.traffic")).to_pandas()
    for arm in (report.champion, report.challenger):
        rows = traffic[traffic.route == arm.route]
        assert arm.labelled == len(rows)
        assert arm.value == pytest.approx(
            float(((rows.prediction >= 0.5).astype(int) == rows.churned).mean())
        )
        assert arm.ci_low < arm.value < arm.ci_high
        assert arm.traffic is not None and arm.traffic.share == pytest.approx(0.5)
    assert report.test == "two-proportion z-test" and report.p_value < 1e-6
    assert report.recommendation == "promote_challenger"
    assert trained.registry.current("churn_model", "production") == 1
    promoted = ab_report(
        ctx,
        "churn",
        metric="accuracy",
        labels="raw.churn_labels",
        join_key="customer_id",
        promote=True,
    )
    assert promoted.promoted is True and promoted.gate is not None
    assert promoted.gate["decision"] == "promoted"
    assert trained.registry.current("churn_model", "production") == 2
    trained.registry.promote("churn_model", 1, "production")  # back, for the other tests


def test_a_feature_aware_models_training_set_is_the_baseline(workspace: Workspace) -> None:
    from datetime import UTC, datetime

    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from lakeloom.features import FeatureLookup

    fs = workspace.features
    frame = labelled(1500, seed=12)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    fs.create_table(
        "features.customers",
        "customer_id",
        "ts",
        df=frame[["customer_id", "tenure", "spend", "plan"]].assign(ts=t0),
    )
    workspace.tables.write(
        "raw.labels",
        frame[["customer_id", "churned"]].assign(label_date=t0 + timedelta(days=3)),
    )
    training_set = fs.create_training_set(
        "raw.labels",
        [FeatureLookup("features.customers", "customer_id", timestamp_lookup_key="label_date")],
        label="churned",
        exclude_columns=["label_date"],
    )
    df = training_set.load_df()
    model = LogisticRegression(max_iter=500).fit(df[["tenure", "spend"]], df["churned"])
    fs.log_model(
        model,
        "model",
        flavor=mlflow.sklearn,
        training_set=training_set,
        registered_model_name="by_key",
    )
    workspace.tables.write("ml.scored", customers(1000, seed=13, shift=1.0))
    result = workspace.monitor(table="ml.scored", baseline="models:/by_key/1")
    assert result.baseline["label"] == "churned"
    assert result.rows["baseline"] == 1500
    compared = {f.column for f in result.findings if f.kind == "feature"}
    assert compared == {"tenure", "spend", "plan"}  # not the key, the label or the date
    assert {f.column for f in result.drifted if f.kind == "feature"} == {"spend"}
