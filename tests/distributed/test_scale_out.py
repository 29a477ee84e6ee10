"""The scale-out mode, proven on real servers: Spark Connect, an MLflow server, Redis.

The embedded default and the scale-out mode differ only in configuration: the same churn
pipeline file runs with ``LAKELOOM_ENGINE=spark`` + ``LAKELOOM_SPARK_REMOTE`` (a Spark Connect
server), ``LAKELOOM_TRACKING_URI`` (an ``mlflow server``) and ``[online_store] kind = "redis"``.
Whatever steps the pipeline holds run; a step that only runs on Spark runs here too.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scale_out_support import ROOT, ConnectServer, base_env, free_port

from lakeloom.pipelines import load_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.spark]

PIPELINE = ROOT / "examples" / "churn" / "pipeline.toml"
LAKELOOM = str(Path(sys.executable).parent / "lakeloom")
HERE = Path(__file__).parent


def run(command: list[str], env: dict[str, str], timeout: float = 600) -> Any:
    """Run ``command`` in the repository, capturing its output as text."""
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def one_error_line(stderr: str) -> str:
    """The CLI's error: exactly one line on stderr, starting with ``error:``."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]


def table_folders(root: Path) -> list[str]:
    """Every Delta table folder under a workspace's Tables/ (``schema/table``)."""
    return sorted(f"{p.parent.name}/{p.name}" for p in (root / "Tables").glob("*/*") if p.is_dir())


def test_engine_contract_suite_on_spark_connect(connect_server: ConnectServer) -> None:
    command = [
        sys.executable, "-m", "pytest", "tests/engines/test_contract.py", "-m", "spark",
        "-q", "-p", "no:cacheprovider", "-x",
    ]  # fmt: skip
    result = run(command, base_env(SPARK_REMOTE=connect_server.url))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 10, result.stdout[-2000:]
    assert "failed" not in result.stdout.splitlines()[-1]


def _scale_out_workspace(root: Path, redis_url: str) -> None:
    root.mkdir()
    (root / "lakeloom.toml").write_text(f'[online_store]\nkind = "redis"\nurl = "{redis_url}"\n')


def test_churn_pipeline_end_to_end_on_connect_mlflow_server_and_redis(
    connect_server: ConnectServer, mlflow_server: str, redis_server: str, tmp_path: Path
) -> None:
    import redis
    from mlflow import MlflowClient

    root = tmp_path / "ws"
    _scale_out_workspace(root, redis_server)
    env = base_env(
        LAKELOOM_ENGINE="spark",
        LAKELOOM_SPARK_REMOTE=connect_server.url,
        LAKELOOM_TRACKING_URI=mlflow_server,
        # MLflow prints "View run ... at: URL" on stdout for tracking servers; --json needs
        # stdout to hold the JSON document alone.
        MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true",
    )
    ran = run(
        [LAKELOOM, "run", str(PIPELINE), "--workspace", str(root), "-p", "customers=300", "--json"],
        env,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    result = json.loads(ran.stdout)
    statuses = {s["step"]: s["status"] for s in result["steps"]}
    assert set(statuses.values()) == {"succeeded"}, statuses

    # Tracking went to the server, online features to Redis: nothing embedded was made.
    assert not (root / "mlflow.db").exists() and not (root / "mlartifacts").exists()
    assert not (root / "online.db").exists()
    client = MlflowClient(mlflow_server)
    spec = load_pipeline(PIPELINE)
    experiments = {str(s.values["experiment"]) for s in spec.steps if "experiment" in s.values}
    for name in experiments:
        found = client.get_experiment_by_name(name)
        assert found is not None, f"experiment {name} is not on the tracking server"
        assert client.search_runs([found.experiment_id], max_results=1)

    # The feature tables it made go online in Redis, and read back from there.
    feature_tables = [str(s.values["table"]) for s in spec.steps if s.kind == "features"]
    assert feature_tables, "the churn pipeline makes no feature table"
    published = run([LAKELOOM, "features", "publish", *feature_tables, "-w", str(root)], env)
    assert published.returncode == 0, published.stdout[-3000:] + published.stderr[-3000:]
    assert redis.Redis.from_url(redis_server).dbsize() > 0
    got = run([LAKELOOM, "features", "get", feature_tables[0], "1", "-w", str(root), "--json"], env)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    assert "customer_id" in got.stdout

    # The Spark ML model the pipeline trained through Connect loads back through Connect.
    spark_steps = [s for s in spec.steps if s.kind == "spark_train"]
    assert spark_steps, "the churn pipeline has no spark_train step"
    step = spark_steps[0].values
    command = [
        sys.executable, str(HERE / "connect_score.py"), str(root),
        str(step["experiment"]), str(step["table"]),
    ]  # fmt: skip
    scored = run(command, env)
    assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
    out = json.loads(scored.stdout.strip().splitlines()[-1])
    assert out["remote"] == connect_server.url
    assert out["scored_rows"] == 300
    assert out["columns"] == ["customer_id", "prediction", "predicted_label", "probability"]
    logged = client.get_run(out["run_id"])
    assert logged.data.tags["lakeloom.engine"] == "spark"
    assert {"roc_auc", "f1", "accuracy"} <= set(logged.data.metrics)
    saved = Path(logged.data.tags["lakeloom.spark_model_path"])
    assert saved.is_relative_to(root / "Files" / "models") and (saved / "stages").is_dir()


# -- bad input: one clear line each, nothing half-written -------------------------------
def test_a_spark_connect_url_that_does_not_answer(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "lakeloom.toml").write_text("")
    url = f"sc://127.0.0.1:{free_port()}"
    env = base_env(LAKELOOM_ENGINE="spark", LAKELOOM_SPARK_REMOTE=url)
    ran = run([LAKELOOM, "run", str(PIPELINE), "--workspace", str(root), "-p", "customers=50"], env)
    assert ran.returncode == 2
    line = one_error_line(ran.stderr)
    assert f"Spark Connect at {url} does not answer" in line
    assert table_folders(root) == []


def test_a_tracking_server_that_is_down(tmp_path: Path) -> None:
    from lakeloom import Workspace
    from lakeloom.datasets import generate_churn

    root = tmp_path / "ws"
    with Workspace.init(root) as ws:
        data = generate_churn(customers=60, seed=2)
        labels = data.churn_labels.to_pandas()[["customer_id", "churned"]]
        ws.tables.write("ml.churn", data.customers.to_pandas().merge(labels, on="customer_id"))
    before = table_folders(root)
    (root / "mlflow.db").unlink(missing_ok=True)
    url = f"http://127.0.0.1:{free_port()}"
    # MLflow's client retries a refused connection for minutes by default (7 tries with
    # backoff): one try is enough to show what the user sees at the end.
    env = base_env(LAKELOOM_TRACKING_URI=url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    command = [
        LAKELOOM, "train", "--workspace", str(root), "--table", "ml.churn",
        "--label", "churned", "--experiment", "down", "--models", "logistic_regression",
    ]  # fmt: skip
    ran = run(command, env, timeout=300)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    line = one_error_line(ran.stderr)
    assert url in line, line
    assert not (root / "mlflow.db").exists()
    assert table_folders(root) == before


def test_redis_unreachable(tmp_path: Path) -> None:
    from lakeloom import Workspace
    from lakeloom.datasets import generate_churn

    root = tmp_path / "ws"
    with Workspace.init(root) as ws:
        customers = generate_churn(customers=40, seed=2).customers
        ws.features.create_table("features.customers", "customer_id", df=customers)
    url = f"redis://127.0.0.1:{free_port()}/0"
    (root / "lakeloom.toml").write_text(f'[online_store]\nkind = "redis"\nurl = "{url}"\n')
    before = table_folders(root)
    ran = run([LAKELOOM, "features", "publish", "features.customers", "-w", str(root)], base_env())
    assert ran.returncode == 2, ran.stdout + ran.stderr
    line = one_error_line(ran.stderr)
    assert "127.0.0.1" in line and "redis" in line.lower(), line
    assert table_folders(root) == before and not (root / "online.db").exists()


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("joblibspark", "optuna")),
    reason="FLAML runs concurrent trials on Spark with joblibspark and optuna "
    "(pip install 'flaml[spark,blendsearch]')",
)
def test_flaml_trials_run_on_the_spark_session(tmp_path: Path) -> None:
    import joblibspark.backend as spark_backend  # type: ignore[import-not-found]
    from sklearn.datasets import load_breast_cancer

    from lakeloom import Workspace
    from lakeloom.automl import AutoMLClassifier

    calls: list[int] = []
    original = spark_backend.SparkDistributedBackend.apply_async

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(self, *args, **kwargs)

    root = tmp_path / "ws"
    root.mkdir()
    (root / "lakeloom.toml").write_text('engine = "spark"\n[spark]\nmaster = "local[2]"\n')
    data = load_breast_cancer(as_frame=True).frame
    with pytest.MonkeyPatch.context() as patch, Workspace.init(root) as ws:
        patch.setattr(spark_backend.SparkDistributedBackend, "apply_async", counted)
        automl = AutoMLClassifier(
            target_column="target",
            time_limit_minutes=None,
            n_trials=4,
            models=["lgbm"],
            use_spark=True,
            ensemble=False,
            context=ws,
        )
        automl.fit(data)
        spark = ws.engine.spark  # type: ignore[attr-defined]
        assert spark.sparkContext.master == "local[2]"
    assert calls, "no FLAML trial went through the Spark backend"
    assert automl.best_score > 0.8
