"""What the deployment tests share: their models, endpoints and payload helpers.

One workspace (embedded sqlite registry) holds real models trained on generated data:

* ``churn_model``: scikit-learn pipelines (median imputation of ``spend``, one-hot, logistic
  regression) on four columns of four types (long, double, string, boolean), versions 1-3
  with aliases ``production`` (v1), ``challenger`` (v2) and ``candidate`` (v3, the shadow);
* ``reload_model``: versions 1 and 2 (good) and 3 (saved with pickle: refused at load),
  alias ``live`` on v1 — only the hot-reload tests move it;
* ``slow_model``: a pyfunc that sleeps for its ``sleep`` column's seconds (timeouts);
* ``lgb_model``: a LightGBM booster (the numeric fast path).

The session's fixtures (``conftest.py``) start the endpoints in real uvicorn servers on free
ports of 127.0.0.1, in this process: ``main`` (champion 90 / challenger 10, shadow, from an
endpoint file the tests may rewrite), ``fastapi`` (the same routes served without the lean
path), ``reload`` (``reload_model@live``) and ``guarded`` (API keys, small limits, a short
timeout). Reload polling is 0.2 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from lakeloom import Workspace
from lakeloom.deployment import (
    DeploymentContext,
    RunningServer,
    create_app,
    start_server,
)

COLUMNS = ["tenure", "spend", "plan", "email_opt_in"]
API_KEY = "test-key-4f9c2b7e0d1a"
POLL = "0.2s"


def churn_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows with the four input columns (long, double, string, boolean) and a label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 60, n).astype("int64"),
            "spend": rng.gamma(2.0, 30.0, n).round(2),
            "plan": pd.Series(rng.choice(["basic", "pro", "max"], n), dtype=object),
            "email_opt_in": rng.random(n) < 0.5,
        }
    )
    score = -0.05 * frame.tenure + 0.02 * frame.spend + (frame.plan == "basic") * 1.0
    frame["churned"] = (score + rng.normal(0, 0.5, n) > 0).astype(int)
    return frame


def _pipeline(c: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    prep = ColumnTransformer(
        [
            ("num", "passthrough", ["tenure", "email_opt_in"]),
            ("spend", SimpleImputer(strategy="median"), ["spend"]),  # nulls score (drift tests)
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    return Pipeline([("prep", prep), ("model", LogisticRegression(C=c, max_iter=500))])


def _log_sklearn(model: Any, X: pd.DataFrame, name: str, *, pickle: bool = False) -> None:
    import mlflow

    from lakeloom.models import required_trusted_types

    kwargs: dict[str, Any] = (
        {"serialization_format": "cloudpickle"}
        if pickle
        else {
            "serialization_format": "skops",
            "skops_trusted_types": required_trusted_types(model),
        }
    )
    _register(mlflow.sklearn.log_model, model, X, model.predict(X), name, "scikit-learn", **kwargs)


def _register(
    log_model: Callable[..., Any],
    model: Any,
    X: pd.DataFrame,
    predicted: Any,
    name: str,
    requirement: str,
    **kwargs: Any,
) -> None:
    """Log ``model`` with a flavor's ``log_model`` in a run of its own; register it as ``name``."""
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run():
        log_model(
            model,
            name="model",
            signature=infer_signature(X, predicted),
            input_example=X.head(3),
            registered_model_name=name,
            pip_requirements=["mlflow", requirement],  # no requirement inference: fast
            **kwargs,
        )


class SlowModel:
    """A pyfunc model that sleeps for the largest value of its ``sleep`` column."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        time.sleep(float(model_input["sleep"].max()))
        return np.zeros(len(model_input))


def _log_slow(name: str) -> None:
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    base = type("SlowPyfunc", (SlowModel, mlflow.pyfunc.PythonModel), {})
    example = pd.DataFrame({"sleep": [0.0]})
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=base(),
            signature=infer_signature(example, np.zeros(1)),
            registered_model_name=name,
            pip_requirements=["mlflow"],
        )


def _log_lightgbm(name: str) -> list[str]:
    import lightgbm as lgb
    import mlflow
    import mlflow.lightgbm

    rng = np.random.default_rng(5)
    cols = [f"x{i}" for i in range(6)]
    X = pd.DataFrame(rng.normal(size=(400, 6)), columns=cols)
    y = (X.x0 + X.x1 > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=10)
    _register(mlflow.lightgbm.log_model, booster, X, booster.predict(X), name, "lightgbm")
    return cols


@dataclass
class Registry:
    """The session's workspace and what it registered."""

    ws: Workspace
    frame: pd.DataFrame
    models: dict[str, Any]
    lgb_columns: list[str]

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Move ``name@alias`` to ``version`` (what `lakeloom models promote` does)."""
        self.ws.mlflow_client.set_registered_model_alias(name, alias, str(version))


def endpoint_toml(name: str, champion: float = 90, challenger: float = 10, **extra: str) -> str:
    """The main endpoint's file: champion/challenger routes, the shadow, fast polling."""
    lines = [
        f'name = "{name}"',
        "[[routes]]",
        'name = "champion"',
        'model = "models:/churn_model@production"',
        f"weight = {champion}",
        "[[routes]]",
        'name = "challenger"',
        'model = "models:/churn_model@challenger"',
        f"weight = {challenger}",
        "[shadow]",
        'model = "models:/churn_model@candidate"',
        "[reload]",
        f'poll_interval = "{POLL}"',
        "[inference_table]",
        'flush_interval = "0.2s"',
        f'optimize_interval = "{extra.get("optimize", "2s")}"',
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Endpoint:
    """A running endpoint: its URL, config file (if any) and inference table."""

    server: RunningServer
    name: str
    config_path: Path | None
    session: requests.Session

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def table(self) -> str:
        return f"lakeloom.inference_{self.name}"

    def post(self, payload: Any, **kwargs: Any) -> requests.Response:
        """POST ``payload`` as JSON to /invocations."""
        return self.session.post(self.url + "/invocations", json=payload, timeout=30, **kwargs)

    def raw(self, body: bytes, content_type: str | None = "application/json", **kw: Any) -> Any:
        """POST raw bytes with a given content type (None: no Content-Type header)."""
        headers = dict(kw.pop("headers", {}))
        if content_type is not None:
            headers["Content-Type"] = content_type
        req = requests.Request("POST", self.url + "/invocations", data=body, headers=headers)
        prepared = self.session.prepare_request(req)
        if content_type is None:
            prepared.headers.pop("Content-Type", None)
        return self.session.send(prepared, timeout=30, **kw)

    def ready(self) -> dict[str, Any]:
        return self.session.get(self.url + "/ready", timeout=30).json()  # type: ignore[no-any-return]

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> None:
        """Poll /ready until ``check`` holds."""
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.ready()
            if check(state):
                return
            time.sleep(0.05)
        raise AssertionError(f"/ready never satisfied the check: {json.dumps(state)[:2000]}")


def _start(registry: Registry, config: Any, path: Path | None, lean: bool = True) -> Endpoint:
    ctx = DeploymentContext(registry.ws.tables, registry.ws.tracking, registry.ws.settings)
    app = create_app(config, ctx, config_path=path, lean=lean)
    return Endpoint(start_server(app), config.name, path, requests.Session())


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready records (plain Python values)."""
    return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return]


def split(frame: pd.DataFrame) -> dict[str, Any]:
    """``{"dataframe_split": ...}`` of ``frame``."""
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
