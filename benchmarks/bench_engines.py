"""The two engines side by side: write, read and a SQL aggregate on the same Delta tables.

For each row count (default 1M and 10M; ``--quick``: 100k) the script generates the same
rows x 6 columns (int64, float64, string, timestamp) and measures, on the local engine and
the Spark engine (``--master``, default ``local[*]``):

* write: ``tables.write`` of the Arrow table (for Spark this includes moving the rows from
  the driver into Spark), and for Spark also of a frame generated inside Spark;
* read (count): ``tables.read`` then the row count (local: the read materialises);
* read (all columns): ``tables.read`` materialised (local: Arrow; Spark: the ``noop`` sink,
  which scans every column on the executors without collecting);
* sql: ``group by`` + ``sum`` over the table, result collected as Arrow.

Spark's session start and first job are timed separately. There is no ratio goal: the
script prints seconds and the spark/local ratio, and exits non-zero only on errors.

Then, on ``--ml-rows`` labelled rows (default 200k; ``--quick``: 20k; ``0`` skips it):

* ml train: lakeloom's training of ``logistic_regression`` end to end, tracked in MLflow:
  scikit-learn on the local engine (``lakeloom.training.train``) against a Spark ML pipeline
  on Spark (``lakeloom.training.spark_ml.train_spark``, one train/validation split);
* ml batch score: read the table, score every row with the fitted model, write the
  predictions table: the scikit-learn model on the local engine against the
  ``PipelineModel`` on Spark (``score_spark``);
* score_batch sklearn: ``ws.score_batch`` table to table (keys, prediction, probabilities,
  provenance; one commit) with the scikit-learn model on each engine (Spark: ``mapInArrow``,
  after one untimed run that starts the Python workers);
* score_batch own model: the same on Spark with the ``PipelineModel`` (scored by Spark).

    python benchmarks/bench_engines.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lakeloom.engines.local import LocalEngine
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables
from lakeloom.settings import SparkSettings

QUERY = "select k, sum(x) as sx, sum(y) as sy, count(*) as n from {table} group by k"


def make_data(rows: int, seed: int = 11) -> pa.Table:
    """``rows`` rows: id, k (1000 keys), x, y (float64), s (string), t (UTC timestamp)."""
    rng = np.random.default_rng(seed)
    vocab = pa.array([f"segment_{i:03d}" for i in range(200)])
    base = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "k": rng.integers(0, 1000, rows, dtype=np.int64),
            "x": rng.standard_normal(rows),
            "y": rng.uniform(0, 100, rows),
            "s": vocab.take(pa.array(rng.integers(0, len(vocab), rows))),
            "t": pa.array(
                base + rng.integers(0, 365 * 86_400_000_000, rows),
                type=pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def spark_frame(spark: Any, rows: int) -> Any:
    """The same shape of rows generated inside Spark (no driver involved)."""
    from pyspark.sql import functions as F

    return spark.range(rows).select(
        F.col("id"),
        (F.hash("id") % 1000).cast("long").alias("k"),
        F.randn(3).alias("x"),
        (F.rand(5) * 100).alias("y"),
        F.concat(F.lit("segment_"), F.lpad((F.col("id") % 200).cast("string"), 3, "0")).alias("s"),
        F.timestamp_micros(
            F.lit(1_704_067_200_000_000) + (F.col("id") * 7919) % (365 * 86_400_000_000)
        ).alias("t"),
    )


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds ``fn`` took, and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_local(root: Path, data: pa.Table) -> dict[str, float]:
    """Seconds per operation on the local engine."""
    tables = Tables(Storage(str(root)), LocalEngine())
    out: dict[str, float] = {}
    out["write (Arrow input)"], _ = timed(lambda: tables.write("bench.events", data))
    seconds, table = timed(lambda: tables.read("bench.events"))
    assert isinstance(table, pa.Table) and table.num_rows == data.num_rows
    out["read (count)"] = out["read (all columns)"] = seconds
    del table
    seconds, result = timed(lambda: tables.sql(QUERY.format(table="bench.events")))
    assert isinstance(result, pa.Table) and result.num_rows == 1000
    out["sql group-by sum"] = seconds
    return out


def run_spark(root: Path, data: pa.Table, engine: Any) -> dict[str, float]:
    """Seconds per operation on the Spark engine."""
    tables = Tables(Storage(str(root)), engine)
    rows = data.num_rows
    out: dict[str, float] = {}
    out["write (Arrow input)"], _ = timed(lambda: tables.write("bench.events", data))
    out["write (Spark frame)"], _ = timed(
        lambda: tables.write("bench.generated", spark_frame(engine.spark, rows))
    )
    seconds, count = timed(lambda: tables.read("bench.events").count())
    assert count == rows, count
    out["read (count)"] = seconds
    out["read (all columns)"], _ = timed(
        lambda: tables.read("bench.events").write.format("noop").mode("overwrite").save()
    )
    seconds, result = timed(lambda: engine.to_arrow(tables.sql(QUERY.format(table="bench.events"))))
    assert isinstance(result, pa.Table) and result.num_rows == 1000
    out["sql group-by sum"] = seconds
    return out


def make_ml_data(rows: int, seed: int = 7) -> pa.Table:
    """``rows`` labelled rows: five numbers, a 20-level category, a boolean ``label``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 5))
    level = rng.integers(0, 20, rows)
    logit = x @ np.array([1.0, -0.5, 0.25, 0.0, 0.8]) + (level % 3 - 1) * 0.7
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            **{f"x{i}": x[:, i] for i in range(5)},
            "segment": pa.array([f"s{v:02d}" for v in level]),
            "label": rng.random(rows) < 1.0 / (1.0 + np.exp(-logit)),
        }
    )


def run_ml(root: Path, data: pa.Table, spark_engine: Any) -> dict[str, tuple[float, float]]:
    """Seconds (local, spark) of Spark ML training and batch scoring against scikit-learn."""
    from lakeloom.tracking.store import TrackingConfig, activate, ensure_experiment
    from lakeloom.training.spark_ml import score_spark, train_spark
    from lakeloom.training.train import TrainingContext, train

    tracking = TrackingConfig(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        registry_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=str(root / "mlartifacts"),
    )
    activate(tracking)  # model URIs (models:/...) resolve in this store
    ensure_experiment(tracking, "warm-up")  # creates MLflow's schema outside the timings
    local_engine = LocalEngine()
    local = Tables(Storage(str(root / "local")), local_engine)
    spark = Tables(Storage(str(root / "spark")), spark_engine)
    local.write("bench.ml", data)
    spark.write("bench.ml", data)
    models = ["logistic_regression"]
    local_train, local_result = timed(
        lambda: train(
            TrainingContext(tracking, local, local_engine),
            "bench.ml",
            label="label",
            experiment="bench-local",
            models=models,
        )
    )
    spark_train, spark_result = timed(
        lambda: train_spark(
            TrainingContext(tracking, spark, spark_engine),
            "bench.ml",
            label="label",
            experiment="bench-spark",
            models=models,
            cv=0,
            params={"regParam": 0.01},
        )
    )
    import mlflow.sklearn
    import mlflow.spark

    sk_model = mlflow.sklearn.load_model(local_result.best().model_uri)  # type: ignore[attr-defined]
    spark_model = mlflow.spark.load_model(spark_result.best().model_uri)  # type: ignore[attr-defined]
    features = [c for c in data.column_names if c not in ("id", "label")]

    def score_local() -> int:
        frame = local.read("bench.ml").to_pandas()
        proba = sk_model.predict_proba(frame[features])[:, 1]
        out = pa.table({"id": frame["id"].to_numpy(), "probability": proba})
        return local.write("bench.scored", out, mode="overwrite")

    def score_with_spark() -> int:
        scored = score_spark(spark_model, spark.read("bench.ml"), keep=["id"])
        return spark.write("bench.scored", scored, mode="overwrite")

    local_score, _ = timed(score_local)
    spark_score, _ = timed(score_with_spark)

    from lakeloom.deployment.batch import BatchScoringContext, score_table

    local_ctx = BatchScoringContext(tracking, local, local_engine)
    spark_ctx = BatchScoringContext(tracking, spark, spark_engine)
    sk_uri = local_result.best().model_uri
    spark_uri = spark_result.best().model_uri

    def score_batch(ctx: BatchScoringContext, uri: str) -> int:
        out = score_table(ctx, uri, "bench.ml", output_table="bench.score_batch", keys=["id"])
        return out.version

    # ws.score_batch: the scikit-learn model on both engines (Spark: mapInArrow), and each
    # engine's own model (the PipelineModel scored by Spark itself). One untimed run first:
    # Spark's Python workers start and import the model's libraries once per session.
    score_batch(spark_ctx, sk_uri)
    local_sb, _ = timed(lambda: score_batch(local_ctx, sk_uri))
    spark_sb, _ = timed(lambda: score_batch(spark_ctx, sk_uri))
    spark_native_sb, _ = timed(lambda: score_batch(spark_ctx, spark_uri))
    return {
        "ml train (end to end)": (local_train, spark_train),
        "ml batch score": (local_score, spark_score),
        "score_batch sklearn": (local_sb, spark_sb),
        "score_batch own model": (local_sb, spark_native_sb),
    }


def parse_rows(text: str) -> list[int]:
    """``1000000`` or ``1e6,10e6`` or ``1M,10M`` to row counts."""
    out = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        out.append(int(float(part.rstrip("km")) * scale))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_rows, help="row counts, e.g. 1M or 1M,10M")
    parser.add_argument("--quick", action="store_true", help="100k rows only")
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    parser.add_argument("--driver-memory", default="6g", help="spark.driver.memory")
    parser.add_argument(
        "--ml-rows", type=parse_rows, help="rows for ML training and scoring (default 200k)"
    )
    args = parser.parse_args(argv)
    counts: list[int] = args.rows or ([100_000] if args.quick else [1_000_000, 10_000_000])

    from lakeloom.engines.spark import SparkEngine

    settings = SparkSettings(master=args.master, conf={"spark.driver.memory": args.driver_memory})
    engine = SparkEngine(settings)
    start_s, session = timed(lambda: engine.spark)
    first_job_s, _ = timed(lambda: session.range(1000).count())  # type: ignore[attr-defined]
    print(
        f"spark start-up: session {start_s:.2f} s, first job {first_job_s:.2f} s "
        f"(master {args.master}, {os.cpu_count()} cores)"
    )

    workdir = Path(tempfile.mkdtemp(prefix="lakeloom-bench-engines-"))
    try:
        print(f"{'rows':>12}  {'operation':<22} {'local s':>9} {'spark s':>9} {'spark/local':>12}")
        for rows in counts if args.rows != [0] else []:
            data = make_data(rows)
            local = run_local(workdir / f"local-{rows}", data)
            spark = run_spark(workdir / f"spark-{rows}", data, engine)
            for op in spark:
                lo = local.get(op)
                lo_text = f"{lo:9.2f}" if lo is not None else f"{'-':>9}"
                ratio = f"{spark[op] / lo:11.1f}x" if lo else f"{'-':>12}"
                print(f"{rows:>12,}  {op:<22} {lo_text} {spark[op]:9.2f} {ratio}")
            del data
        ml_rows = args.ml_rows[0] if args.ml_rows else (20_000 if args.quick else 200_000)
        if ml_rows:
            ml = run_ml(workdir / "ml", make_ml_data(ml_rows), engine)
            for op, (lo, sp) in ml.items():
                print(f"{ml_rows:>12,}  {op:<22} {lo:9.2f} {sp:9.2f} {sp / lo:11.1f}x")
    finally:
        engine.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        code = main()
    except Exception as exc:  # one line, non-zero exit
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without interpreter teardown: delta-rs + pyarrow can abort at exit (see NOTES).
    os._exit(code)
