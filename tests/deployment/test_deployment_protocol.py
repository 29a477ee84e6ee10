"""MLflow's scoring protocol on a real endpoint: layouts, clients, errors, operations."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from deployment_support import COLUMNS, Endpoint, Registry, records, split

SECRET = "SECRET-VALUE-7731"


def _expected(registry: Registry, version: int, frame: pd.DataFrame) -> list[Any]:
    return list(registry.models[f"churn_model/{version}"].predict(frame[COLUMNS]).tolist())


def _check(registry: Registry, resp: Any, frame: pd.DataFrame) -> None:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    version = int(resp.headers["x-lakeloom-model-version"])
    assert resp.headers["x-lakeloom-model"] == "churn_model"
    assert resp.headers["x-lakeloom-route"] in ("champion", "challenger")
    assert resp.headers["x-request-id"]
    assert resp.json() == {"predictions": _expected(registry, version, frame)}


def test_every_layout_scores(endpoint: Endpoint, registry: Registry) -> None:
    frame = registry.frame.head(5)
    recs = records(frame[COLUMNS])
    payloads = [
        split(frame[COLUMNS]),
        {"dataframe_records": recs},
        {"instances": recs},
        {"inputs": {c: [r[c] for r in recs] for c in COLUMNS}},
        {"dataframe_split": split(frame[COLUMNS])["dataframe_split"], "params": {}},
    ]
    for payload in payloads:
        _check(registry, endpoint.post(payload), frame)
    csv = frame[COLUMNS].to_csv(index=False).encode()
    _check(registry, endpoint.raw(csv, "text/csv"), frame)
    _check(
        registry,
        endpoint.raw(json.dumps(payloads[0]).encode(), "application/json; charset=utf-8"),
        frame,
    )
    alias = endpoint.session.post(endpoint.url + "/predict", json=payloads[1], timeout=30)
    _check(registry, alias, frame)


def test_payloads_mlflow_itself_accepts(endpoint: Endpoint, registry: Registry) -> None:
    """Payloads built by MLflow's own helpers, parsed by MLflow's own server code."""
    from mlflow.models import Model
    from mlflow.pyfunc.scoring_server import infer_and_parse_data
    from mlflow.utils.proto_json_utils import dump_input_data

    frame = registry.frame.sample(7, random_state=3)[COLUMNS]
    mv = registry.ws.mlflow_client.get_model_version_by_alias("churn_model", "production")
    schema = Model.load(f"models:/churn_model/{mv.version}").get_input_schema()
    for payload_text in (
        dump_input_data(frame),  # dataframe_split, as MLflow's clients send it
        json.dumps({"dataframe_records": records(frame)}),
        json.dumps({"instances": records(frame)}),
    ):
        doc = json.loads(payload_text)
        parsed = infer_and_parse_data({k: v for k, v in doc.items() if k != "params"}, schema)
        if isinstance(parsed, dict):  # MLflow turns `instances` records into columns
            parsed = pd.DataFrame(parsed)
        resp = endpoint.raw(payload_text.encode(), "application/json")
        assert resp.status_code == 200, resp.text
        version = int(resp.headers["x-lakeloom-model-version"])
        model = registry.models[f"churn_model/{version}"]
        assert resp.json()["predictions"] == model.predict(parsed).tolist()


def test_mlflow_scoring_client_works_unchanged(main_endpoint: Endpoint, registry: Registry) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    host, port = main_endpoint.url.removeprefix("http://").split(":")
    client = ScoringServerClient(host, int(port))
    client.wait_server_ready(timeout=10)
    frame = registry.frame.head(4)[COLUMNS]
    result = client.invoke(frame)
    assert len(result.get_predictions()) == 4


BAD = [
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b"[" * 50_000 + b"]" * 50_000, "application/json", 400, "nested too deeply"),
    (b'{"inputs": [' + b"7" * 20_000 + b"]}", "application/json", 400, "number"),
    (b"{}", "text/plain", 415, "Content-Type"),
    (b"{}", None, 415, "Content-Type"),
    (b'{"rows": []}', "application/json", 400, "exactly one of"),
    (
        b'{"dataframe_split": {"columns": ["tenure"], "data": [[1]]}}',
        "application/json",
        400,
        "missing column 'spend'",
    ),
    (
        json.dumps(
            {
                "dataframe_records": [
                    {"tenure": 1, "spend": SECRET, "plan": "pro", "email_opt_in": True}
                ]
            }
        ).encode(),
        "application/json",
        400,
        "column 'spend' expects double, got a string",
    ),
    (
        json.dumps(
            {
                "dataframe_records": [
                    {"tenure": 1, "spend": True, "plan": "pro", "email_opt_in": True}
                ]
            }
        ).encode(),
        "application/json",
        400,
        "column 'spend' expects double, got a boolean",
    ),
    (
        json.dumps(
            {"dataframe_split": {"columns": COLUMNS, "data": [[1, 2.0, "pro", True], [1, 2.0]]}}
        ).encode(),
        "application/json",
        400,
        "row 1 has 2 values",
    ),
    (
        json.dumps(
            {
                "dataframe_records": [
                    {"tenure": 10**30, "spend": 1.0, "plan": "pro", "email_opt_in": True}
                ]
            }
        ).encode(),
        "application/json",
        400,
        "out of the range of long",
    ),
    (
        json.dumps(
            {
                "dataframe_records": [
                    {
                        "tenure": 1,
                        "spend": {"deep": [[[SECRET]]]},
                        "plan": "pro",
                        "email_opt_in": True,
                    }
                ]
            }
        ).encode(),
        "application/json",
        400,
        "got an object",
    ),
    (b"tenure,spend\n1,abc\n", "text/csv", 400, "missing column 'plan'"),
    (
        b"tenure,spend,plan,email_opt_in\n1,SECRET-VALUE-7731,pro,true\n",
        "text/csv",
        400,
        "column 'spend' expects double",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "status", "needle"), BAD)
def test_bad_input_is_a_clear_4xx_without_the_payload(
    endpoint: Endpoint, body: bytes, content_type: str | None, status: int, needle: str
) -> None:
    resp = endpoint.raw(body, content_type)
    assert resp.status_code == status, resp.text[:300]
    doc = resp.json()
    assert needle in doc["message"]
    assert doc["error_code"]
    assert SECRET not in resp.text
    assert len(resp.content) < 1000  # never the payload back


def test_no_input_crashes_the_server(endpoint: Endpoint, registry: Registry) -> None:
    bodies = [
        b'{"dataframe_records": [{"tenure": 1, "spend": 1e400, "plan": "pro", '
        b'"email_opt_in": true}]}',
        b'{"dataframe_records": [{"tenure": 1, "spend": NaN, "plan": null, "email_opt_in": true}]}',
        b'{"dataframe_split": {"columns": [], "data": []}}',
        b'{"instances": []}',
        b'{"inputs": [1, 2, 3]}',
        b"\x00" * 5000,
        json.dumps({"dataframe_split": {"columns": ["a"] * 5000, "data": [[1] * 5000]}}).encode(),
        b'{"dataframe_records": [' + b'{"x": 1},' * 20_000 + b'{"x": 1}]}',
    ]
    for body in bodies:
        resp = endpoint.raw(body, "application/json")
        assert resp.status_code < 500, (body[:40], resp.status_code, resp.text[:200])
    assert endpoint.session.get(endpoint.url + "/health", timeout=10).json() == {"status": "alive"}
    _check(
        registry,
        endpoint.post({"dataframe_records": records(registry.frame.head(2)[COLUMNS])}),
        registry.frame.head(2),
    )


def test_empty_input_gives_empty_predictions(main_endpoint: Endpoint) -> None:
    resp = main_endpoint.post({"dataframe_split": {"columns": COLUMNS, "data": []}})
    assert resp.status_code == 200 and resp.json() == {"predictions": []}


def test_operations_endpoints(main_endpoint: Endpoint, registry: Registry) -> None:
    main_endpoint.post({"dataframe_records": records(registry.frame.head(1)[COLUMNS])})
    get = main_endpoint.session.get
    assert get(main_endpoint.url + "/health", timeout=10).json() == {"status": "alive"}
    assert get(main_endpoint.url + "/ping", timeout=10).status_code == 200
    ready = main_endpoint.ready()
    assert ready["status"] == "ready"
    routes = {r["route"]: r for r in ready["routes"]}
    assert routes["champion"]["version"] == 1 and routes["challenger"]["version"] == 2
    assert [c["name"] for c in routes["champion"]["inputs"]] == COLUMNS
    assert ready["shadow"]["version"] == 3
    text = get(main_endpoint.url + "/metrics", timeout=10).text
    assert 'lakeloom_requests_total{endpoint="churn",route="champion",status="200"}' in text
    assert "lakeloom_request_duration_seconds_bucket" in text
    assert 'le="+Inf"' in text
    assert "lakeloom_requests_in_flight" in text
    assert (
        'lakeloom_model_version{endpoint="churn",route="challenger",model="churn_model"} 2' in text
    )
    spec = get(main_endpoint.url + "/openapi.json", timeout=10).json()
    assert {"/invocations", "/predict", "/health", "/ready", "/metrics"} <= set(spec["paths"])
    body = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv"} <= set(body)
    assert get(main_endpoint.url + "/docs", timeout=10).status_code == 200


def test_request_id_is_echoed_when_safe(main_endpoint: Endpoint, registry: Registry) -> None:
    payload = {"dataframe_records": records(registry.frame.head(1)[COLUMNS])}
    resp = main_endpoint.post(payload, headers={"X-Request-ID": "client-42"})
    assert resp.headers["x-request-id"] == "client-42"
    resp = main_endpoint.post(payload, headers={"X-Request-ID": "bad id\twith spaces"})
    assert resp.headers["x-request-id"] != "bad id\twith spaces"


def test_lightgbm_booster_fast_path_matches_pyfunc(registry: Registry, tmp_path: Any) -> None:
    """A LightGBM booster is scored on a numpy matrix: the same numbers as MLflow's pyfunc."""
    import mlflow.pyfunc
    import numpy as np

    from lakeloom.deployment.config import parse_model_ref
    from lakeloom.deployment.models import load_version

    handle = load_version(registry.ws.tracking, parse_model_ref("models:/lgb_model@live"), 1)
    schema = handle.input_schema
    assert schema is not None and getattr(handle, "_booster", None) is not None
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(20, 6)), columns=registry.lgb_columns)
    shuffled = frame[registry.lgb_columns[::-1]]
    rows = [tuple(r) for r in frame[list(schema.names)].itertuples(index=False, name=None)]
    ours = handle.predict(schema.names, schema.types, rows)
    theirs = mlflow.pyfunc.load_model("models:/lgb_model/1").predict(shuffled)
    assert np.allclose(ours, theirs)
