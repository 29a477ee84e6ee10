"""Feature-aware models at a real endpoint: entity keys in, features from the online store.

One workspace per online backend (SQLite, and Redis on the session's redis-server) holds two
feature tables published online and a feature-aware model trained on them; a real uvicorn
server serves it. Requests carry only ``customer_id``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from lakeloom import FeatureLookup, Workspace
from lakeloom.deployment import (
    DeploymentContext,
    EndpointRuntime,
    RunningServer,
    create_app,
    parse_endpoint_config,
    start_server,
)
from lakeloom.errors import ModelLoadError
from lakeloom.pipelines.kinds.serve import ServeDemoParams, serve_demo
from lakeloom.pipelines.steps import StepContext

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
N = 40
UNKNOWN = 999


@dataclass
class Served:
    """A workspace with a published feature-aware model and an endpoint serving it."""

    ws: Workspace
    server: RunningServer
    app: Any
    model: LogisticRegression
    session: requests.Session

    def post(self, payload: Any, path: str = "/invocations") -> requests.Response:
        return self.session.post(self.server.url + path, json=payload, timeout=30)


def _feature_tables(ws: Workspace) -> Any:
    fs = ws.features
    ids = np.arange(1, N + 1)
    fs.create_table(
        "features.activity",
        "customer_id",
        "ts",
        df=pa.table(
            {
                "customer_id": pa.array(ids, pa.int64()),
                "ts": pa.array([T0] * N, TS),
                "activity": pa.array((ids % 2) * 10.0 + ids / 10.0),
            }
        ),
    )
    fs.create_table(
        "features.profile",
        "customer_id",
        df=pa.table(
            {
                "customer_id": pa.array(ids, pa.int64()),
                "age": ids + 20.0,
                "plan": pa.array(["basic", "pro"] * (N // 2)),
            }
        ),
    )
    labels = pd.DataFrame(
        {
            "customer_id": ids,
            "label_date": [T0 + timedelta(days=3)] * N,
            "churned": ids % 2,
        }
    )
    return fs.create_training_set(
        labels,
        [
            FeatureLookup(
                "features.activity",
                "customer_id",
                timestamp_lookup_key="label_date",
                default_values={"activity": -1.0},
            ),
            FeatureLookup(
                "features.profile",
                "customer_id",
                feature_names=["age"],
                default_values={"age": 40.0},
            ),
        ],
        label="churned",
        exclude_columns=["customer_id", "label_date"],
    )


def _open(root: Path, kind: str, url: str) -> Workspace:
    os.environ["LAKELOOM_ONLINE_STORE_KIND"] = kind
    os.environ["LAKELOOM_ONLINE_STORE_URL"] = url
    try:
        return Workspace.init(root)
    finally:
        del os.environ["LAKELOOM_ONLINE_STORE_KIND"], os.environ["LAKELOOM_ONLINE_STORE_URL"]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A feature-aware model behind a real endpoint, per online backend."""
    kind = request.param
    url = ""
    if kind == "redis":
        base = request.getfixturevalue("redis_url")
        url = base.rsplit("/", 1)[0] + "/7?prefix=serving"  # a database no other test empties
    ws = _open(tmp_path_factory.mktemp(f"serving-{kind}") / "ws", kind, url)
    ts = _feature_tables(ws)
    df = ts.load_df()
    model = LogisticRegression().fit(df[ts.feature_columns], df["churned"])
    ws.features.log_model(
        model, "model", flavor=mlflow.sklearn, training_set=ts, registered_model_name="fa"
    )
    ws.mlflow_client.set_registered_model_alias("fa", "production", "1")
    ws.features.publish_table("features.activity")
    ws.features.publish_table("features.profile")
    config = parse_endpoint_config(
        {
            "name": "fa",
            "routes": [{"name": "champion", "model": "models:/fa@production"}],
            "inference_table": {"flush_interval": "60s"},
        },
        "tests",
    )
    app = create_app(config, DeploymentContext(ws.tables, ws.tracking, ws.settings, ws.storage))
    server = start_server(app)
    try:
        yield Served(ws, server, app, model, requests.Session())
    finally:
        server.stop()
        ws.close()


def _expected(served: Served, rows: list[dict[str, float]]) -> list[int]:
    frame = pd.DataFrame(rows, columns=["activity", "age"])
    return [int(p) for p in served.model.predict(frame)]


def test_keys_in_features_looked_up(served: Served) -> None:
    ready = served.session.get(served.server.url + "/ready", timeout=30).json()
    route = ready["routes"][0]
    assert route["feature_aware"]["keys"] == ["customer_id"]
    assert route["feature_aware"]["tables"] == ["features.activity", "features.profile"]
    inputs = {c["name"]: (c["type"], c["required"]) for c in route["inputs"]}
    assert inputs == {
        "customer_id": ("long", True),
        "label_date": ("datetime", False),
        "activity": ("double", False),
        "age": ("double", False),
    }
    # Keys only, in every MLflow layout, on /invocations and its alias /predict.
    expected = _expected(
        served,
        [
            {"activity": 0.3 + 10.0, "age": 23.0},
            {"activity": 0.4, "age": 24.0},
            {"activity": -1.0, "age": 40.0},  # unknown key: the lookups' defaults (else nulls)
        ],
    )
    payloads = [
        {"dataframe_records": [{"customer_id": 3}, {"customer_id": 4}, {"customer_id": UNKNOWN}]},
        {"dataframe_split": {"columns": ["customer_id"], "data": [[3], [4], [UNKNOWN]]}},
        {"inputs": {"customer_id": [3, 4, UNKNOWN]}},
    ]
    for payload in payloads:
        for path in ("/invocations", "/predict"):
            if payload is payloads[0] or path == "/invocations":
                resp = served.post(payload, path)
                assert resp.status_code == 200, resp.text
                assert resp.json() == {"predictions": expected}
                assert resp.headers["x-lakeloom-model"] == "fa"
    # The same answers as the feature store's own online scoring.
    keys = pd.DataFrame({"customer_id": [3, 4, UNKNOWN]})
    batch = served.ws.features.score_batch("models:/fa/1", keys, feature_source="online")
    assert batch.column("prediction").to_pylist() == expected


def test_overrides_and_bad_keys(served: Served) -> None:
    # A feature sent with the key is used instead of the online value; a null is looked up.
    resp = served.post({"dataframe_records": [{"customer_id": 4, "activity": 50.0, "age": None}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == _expected(served, [{"activity": 50.0, "age": 24.0}])
    bad = served.post({"dataframe_records": [{"customer_id": "secret-value"}]})
    assert bad.status_code == 400
    assert "customer_id" in bad.json()["message"] and "long" in bad.json()["message"]
    assert "secret-value" not in bad.text
    missing = served.post({"dataframe_records": [{"age": 30.0}]})
    assert missing.status_code == 400 and "customer_id" in missing.json()["message"]


def test_inference_table_logs_the_features_used(served: Served) -> None:
    served.post({"dataframe_records": [{"customer_id": 5}, {"customer_id": UNKNOWN}]})
    runtime = served.app.state.runtime
    runtime.flush_log()
    table = served.ws.tables.read("lakeloom.inference_fa").to_pandas()
    logged = table[table["customer_id"].isin([5, UNKNOWN])].drop_duplicates("customer_id")
    by_key = logged.set_index("customer_id")
    assert by_key.loc[5, "age"] == 25.0 and by_key.loc[5, "activity"] == pytest.approx(10.5)
    assert by_key.loc[UNKNOWN, "age"] == 40.0 and by_key.loc[UNKNOWN, "activity"] == -1.0
    metrics = served.session.get(served.server.url + "/metrics", timeout=30).text
    misses = [
        line for line in metrics.splitlines() if line.startswith("lakeloom_feature_lookup_misses")
    ]
    assert misses and float(misses[0].rsplit(" ", 1)[1]) >= 2  # two lookups missed key 999


def test_a_model_whose_table_is_not_published_is_refused(served: Served) -> None:
    ws = served.ws
    ts = ws.features.create_training_set(
        pd.DataFrame({"customer_id": [1, 2], "y": [0, 1]}),
        [FeatureLookup("features.profile", "customer_id", feature_names=["plan"])],
        label="y",
        exclude_columns=["customer_id"],
    )
    ws.features.online_store.drop("features.profile")
    try:
        from sklearn.dummy import DummyClassifier

        ws.features.log_model(
            DummyClassifier().fit(np.zeros((2, 1)), [0, 1]),
            "model",
            flavor=mlflow.sklearn,
            training_set=ts,
            registered_model_name="unpublished",
        )
        config = parse_endpoint_config(
            {"name": "unpub", "routes": [{"model": "models:/unpublished/1"}]}, "tests"
        )
        ctx = DeploymentContext(ws.tables, ws.tracking, ws.settings, ws.storage)
        runtime = EndpointRuntime(config, ctx)  # what the endpoint's startup runs
        with pytest.raises(ModelLoadError, match=r"features\.profile, which is not published"):
            runtime.load()
    finally:
        ws.features.publish_table("features.profile")


def test_serve_step_with_a_feature_aware_champion(served: Served) -> None:
    ws = served.ws
    ids = np.arange(1, N + 1)
    rows = pa.table(
        {"customer_id": pa.array(ids, pa.int64()), "activity": ids * 1.0, "age": ids + 20.0}
    )
    ws.tables.write("demo.fa_rows", rows, mode="overwrite")
    ctx = StepContext(ws, "churn", "serve", "runfa0001")
    summary = serve_demo(
        ctx,
        ServeDemoParams(
            champion="models:/fa@production",
            data="demo.fa_rows",
            endpoint="fa_step",
            requests=N,
            drift_requests=N,
            concurrency=2,
        ),
    )
    assert summary is not None and "failed" not in summary, summary
    assert "activity +" in summary and "40% unknown customer_id" in summary
    log = ws.tables.read("lakeloom.inference_fa_step").to_pandas()
    log = log[log["request_id"].str.contains("-runfa000-")]
    normal = log[log["request_id"].str.startswith("req-")]
    drift = log[log["request_id"].str.startswith("drift-")]
    assert len(normal) == N and len(drift) == N
    # Normal requests carried keys only: the features logged are the online ones.
    assert (normal["age"] == normal["customer_id"] + 20.0).all()
    expected_activity = (normal["customer_id"] % 2) * 10.0 + normal["customer_id"] / 10.0
    assert np.allclose(normal["activity"], expected_activity)
    # Drifted: activity sent shifted (an override), 40% of the keys unknown (defaults).
    unknown = drift["customer_id"] < 0
    assert unknown.mean() == 0.4 and (drift.loc[unknown, "age"] == 40.0).all()
    assert drift["activity"].mean() > rows.column("activity").to_numpy().mean() + 10
