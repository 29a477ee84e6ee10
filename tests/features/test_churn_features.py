"""The churn features (SQL locally, PySpark on Spark), the pipeline steps and the CLI."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from lakeloom import Workspace
from lakeloom.cli import cli
from lakeloom.datasets import generate_churn
from lakeloom.engines.base import Engine
from lakeloom.engines.local import LocalEngine
from lakeloom.features.churn import churn_features
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables
from lakeloom.pipelines.runner import run_pipeline
from lakeloom.pipelines.spec import load_pipeline

AS_OF = datetime.date(2026, 1, 1)


@pytest.mark.spark
def test_sql_and_pyspark_give_the_same_rows(tmp_path: Path, fs_spark_engine: Engine) -> None:
    local = Tables(Storage(str(tmp_path)), LocalEngine())
    for name, table in generate_churn(120, seed=5, as_of=AS_OF).tables().items():
        local.write(name, table)
    spark = Tables(Storage(str(tmp_path)), fs_spark_engine)
    order = [("customer_id", "ascending"), ("ts", "ascending")]
    for name in ("churn.demographics", "churn.rfm_daily"):
        a = LocalEngine().to_arrow(churn_features(local, LocalEngine(), name, as_of=AS_OF, days=30))
        b = fs_spark_engine.to_arrow(
            churn_features(spark, fs_spark_engine, name, as_of=AS_OF, days=30)
        )
        assert a.schema.names == b.schema.names
        assert a.sort_by(order).equals(b.cast(a.schema).sort_by(order)), name


def test_rfm_snapshots_are_point_in_time(tmp_path: Path) -> None:
    tables = Tables(Storage(str(tmp_path)), LocalEngine())
    data = generate_churn(60, seed=2, as_of=AS_OF).tables()
    for name, table in data.items():
        tables.write(name, table)
    rfm = LocalEngine().to_arrow(
        churn_features(tables, LocalEngine(), "churn.rfm_daily", as_of=AS_OF, days=10)
    )
    orders = data["raw.orders"]
    for row in rfm.filter(pc.equal(rfm["customer_id"], 7)).to_pylist():
        mine = orders.filter(
            pc.and_(
                pc.equal(orders["customer_id"], 7),
                pc.less_equal(
                    orders["order_date"], pa.scalar(row["ts"], orders["order_date"].type)
                ),
            )
        )
        assert row["orders_total"] == mine.num_rows
        assert row["total_spent"] == round(pc.sum(mine["amount"]).as_py() or 0.0, 2)


PIPELINE = """
name = "fs"
[[steps]]
name = "generate"
kind = "generate_churn"
customers = 80
seed = 3
as_of = 2026-01-01

[[steps]]
name = "rfm"
kind = "features"
table = "features.rfm"
builtin = "churn.rfm_daily"
as_of = 2026-01-01
days = 100
primary_keys = ["customer_id"]
timestamp_key = "ts"

[[steps]]
name = "plans"
kind = "features"
table = "features.plans"
query = "select customer_id, plan, cast(signup_date as timestamptz) as ts from raw.customers"
primary_keys = ["customer_id"]
timestamp_key = "ts"

[[steps]]
name = "training_set"
kind = "training_set"
labels = "raw.churn_labels"
label = "churned"
output_table = "ml.training"
lookups = [
    { table = "features.rfm", lookup_key = "customer_id", timestamp_lookup_key = "label_date" },
    { table = "features.plans", lookup_key = "customer_id", features = ["plan"] },
]
[steps.model]
experiment = "fs"
models = ["logistic_regression"]
registered_model_name = "fs_churn"
exclude = ["customer_id", "label_date"]

[[steps]]
name = "publish"
kind = "publish"
tables = ["features.rfm"]
"""


def test_pipeline_steps_and_cli(ml_ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE)
    result = run_pipeline(ml_ws, load_pipeline(path))
    assert result.run_id
    training = ml_ws.tables.read("ml.training")
    assert training.num_rows == 80 and "orders_total" in training.column_names
    assert ml_ws.features.describe("features.rfm").used_by == ["fs_churn/1"]
    keys = training.select(["customer_id", "label_date"])
    scored = ml_ws.score_batch("models:/fs_churn/1", keys)
    assert scored.num_rows == 80 and set(scored.column("prediction").to_pylist()) <= {0, 1}

    def run(*args: str) -> Any:
        out = CliRunner().invoke(cli, ["--workspace", ml_ws.root, *args])
        return out

    listed = run("--json", "features", "list")
    assert listed.exit_code == 0, listed.output
    assert [t["name"] for t in json.loads(listed.stdout)] == ["features.plans", "features.rfm"]
    shown = run("features", "describe", "features.rfm")
    assert shown.exit_code == 0 and "fs_churn/1" in shown.stdout
    history = run("--json", "features", "history", "features.rfm")
    assert json.loads(history.stdout)[0]["operation"]
    got = run("--json", "features", "get", "features.rfm", "7", "--features", "orders_total")
    assert got.exit_code == 0, got.output
    assert set(json.loads(got.stdout)[0]) == {"customer_id", "orders_total"}
    assert run("features", "get", "features.rfm", "123456").exit_code == 1
    published = run("--json", "features", "publish", "features.plans")
    assert published.exit_code == 0 and json.loads(published.stdout)[0]["name"] == "features.plans"
    missing = run("features", "describe", "features.nope")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
