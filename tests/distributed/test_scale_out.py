"""The scale-out mode, proven on real servers: Spark Connect, an MLflow server, Redis.

The embedded default and the scale-out mode differ only in configuration: the same churn
pipeline file runs with ``LAKELOOM_ENGINE=spark`` + ``LAKELOOM_SPARK_REMOTE`` (a Spark Connect
server), ``LAKELOOM_TRACKING_URI`` (an ``mlflow server``) and ``[online_store] kind = "redis"``.
Whatever steps the pipeline holds run; a step that only runs on Spark runs here too. FLAML's
``use_spark`` trials run as jobs of lakeloom's Spark session.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from scale_out_support import LAKELOOM, PIPELINE, ConnectServer, base_env, run

from lakeloom.pipelines import load_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.spark]

HERE = Path(__file__).parent


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
    # Every row of the training table (the customers the pipeline did not hold out) scored.
    assert out["scored_rows"] == out["table_rows"] > 0
    assert out["columns"] == ["customer_id", "prediction", "predicted_label", "probability"]
    logged = client.get_run(out["run_id"])
    assert logged.data.tags["lakeloom.engine"] == "spark"
    assert {"roc_auc", "f1", "accuracy"} <= set(logged.data.metrics)
    saved = Path(logged.data.tags["lakeloom.spark_model_path"])
    assert saved.is_relative_to(root / "Files" / "models") and (saved / "stages").is_dir()


def test_flaml_trials_run_on_the_spark_session(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    from lakeloom import Workspace
    from lakeloom.automl import AutoMLClassifier
    from lakeloom.automl.search import TRIALS_JOB_TAG

    root = tmp_path / "ws"
    root.mkdir()
    (root / "lakeloom.toml").write_text('engine = "spark"\n[spark]\nmaster = "local[2]"\n')
    data = load_breast_cancer(as_frame=True).frame
    with Workspace.init(root) as ws:
        spark = ws.engine.spark  # type: ignore[attr-defined]
        # pyspark's StatusTracker has no tag lookup; the JVM's SparkStatusTracker has.
        tagged = spark.sparkContext._jsc.sc().statusTracker().getJobIdsForTag
        assert list(tagged(TRIALS_JOB_TAG)) == []
        automl = AutoMLClassifier(
            target_column="target",
            time_limit_minutes=None,
            n_trials=4,
            models=["lgbm", "random_forest"],
            use_spark=True,
            ensemble=False,
            context=ws,
        )
        automl.fit(data)
        assert spark.sparkContext.master == "local[2]"
        # Every trial ran as a Spark job of this session (joblib runs a lone job in the
        # driver instead, without any Spark job), and the tag does not outlive the fit.
        tracker = spark.sparkContext.statusTracker()
        jobs = [tracker.getJobInfo(j) for j in tagged(TRIALS_JOB_TAG)]
        assert len(jobs) == len(automl.trials_) == 4, jobs
        assert {job.status for job in jobs if job is not None} == {"SUCCEEDED"}, jobs
        assert TRIALS_JOB_TAG not in spark.sparkContext.getJobTags()
    assert "FLAML_MAX_CONCURRENT" not in os.environ
    # Trials of both learners came back from Spark, with their own hyperparameters only.
    assert {t.learner for t in automl.trials_} == {"lgbm", "rf"}
    assert all("learner" not in t.config and "ml" not in t.config for t in automl.trials_)
    assert automl.best_score > 0.8


def test_flaml_spark_trials_within_a_time_limit(tmp_path: Path) -> None:
    """The time limit ends the search without cancelling running trials' jobs (cancelling
    them fails inside joblibspark with joblib 1.6 and would end the fit).
    """
    from sklearn.datasets import load_breast_cancer

    from lakeloom import Workspace
    from lakeloom.automl import AutoMLClassifier
    from lakeloom.automl.search import TRIALS_JOB_TAG

    root = tmp_path / "ws"
    root.mkdir()
    (root / "lakeloom.toml").write_text('engine = "spark"\n[spark]\nmaster = "local[2]"\n')
    data = load_breast_cancer(as_frame=True).frame
    with Workspace.init(root) as ws:
        spark = ws.engine.spark  # type: ignore[attr-defined]
        tagged = spark.sparkContext._jsc.sc().statusTracker().getJobIdsForTag
        automl = AutoMLClassifier(
            target_column="target",
            time_limit_minutes=1,
            models=["lgbm"],
            use_spark=True,
            ensemble=False,
            context=ws,
        )
        automl.fit(data)
        tracker = spark.sparkContext.statusTracker()
        jobs = [tracker.getJobInfo(j) for j in tagged(TRIALS_JOB_TAG)]
    assert len(jobs) >= len(automl.trials_) >= 1, jobs
    assert {job.status for job in jobs if job is not None} == {"SUCCEEDED"}, jobs
    assert automl.best_score > 0.8
