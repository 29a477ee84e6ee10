"""Bad input in the scale-out mode: one clear line each, nothing half-written.

A Spark Connect URL that does not answer, a tracking server that is down, Redis unreachable,
and FLAML's Spark trials asked of a Spark Connect session.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from scale_out_support import (
    LAKELOOM,
    PIPELINE,
    base_env,
    free_port,
    one_error_line,
    run,
    table_folders,
)

from lakeloom.errors import TrackingError

pytestmark = [pytest.mark.slow]


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
    # MLflow's own client would retry for minutes (7 tries with backoff): lakeloom asks the
    # server once, with a short timeout, before its first MLflow call.
    env = base_env(LAKELOOM_TRACKING_URI=url)
    command = [
        LAKELOOM, "train", "--workspace", str(root), "--table", "ml.churn",
        "--label", "churned", "--experiment", "down", "--models", "logistic_regression",
    ]  # fmt: skip
    ran = run(command, env, timeout=300)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    line = one_error_line(ran.stderr)
    assert f"tracking server {url} does not answer: connection refused; start it" in line
    assert not (root / "mlflow.db").exists()
    assert table_folders(root) == before


def test_the_tracking_check_takes_any_http_answer(mlflow_server: str) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from lakeloom.tracking.store import check_server

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    check_server(mlflow_server)
    # A proxy or a server that answers 404 (or 401) on its root is there: MLflow says what
    # is wrong with it. Only no answer at all is refused up front.
    with ThreadingHTTPServer(("127.0.0.1", 0), NotFound) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            check_server(f"http://127.0.0.1:{server.server_address[1]}/mlflow")
        finally:
            server.shutdown()
            thread.join()
    down = f"http://user:secret@127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError) as raised:
        check_server(down)
    message = str(raised.value)
    assert "\n" not in message and "secret" not in message
    assert "tracking server http://user:***@127.0.0.1:" in message
    assert "does not answer: connection refused" in message


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
    assert f"the Redis online store at {url} failed" in line, line
    assert "connection refused" in line.lower(), line
    assert table_folders(root) == before and not (root / "online.db").exists()


def test_flaml_trials_need_a_classic_spark_session(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    from lakeloom import Workspace
    from lakeloom.automl import AutoMLClassifier
    from lakeloom.errors import AutoMLError

    root = tmp_path / "ws"
    root.mkdir()
    url = f"sc://127.0.0.1:{free_port()}"
    (root / "lakeloom.toml").write_text(f'[spark]\nremote = "{url}"\n')
    data = load_breast_cancer(as_frame=True).frame
    with Workspace.init(root) as ws:
        automl = AutoMLClassifier(
            target_column="target", n_trials=2, models=["lgbm"], use_spark=True, context=ws
        )
        with pytest.raises(AutoMLError) as raised:
            automl.fit(data)
    message = str(raised.value)
    assert "\n" not in message
    assert f"needs a classic Spark session, not Spark Connect ({url})" in message
    assert table_folders(root) == []
