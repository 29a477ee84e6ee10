"""The inference table: what one request writes, sampling, compaction."""

from __future__ import annotations

import json
import time
from typing import Any

import pyarrow as pa
from deployment_support import COLUMNS, Endpoint, Registry, records

from lakeloom.deployment.config import InferenceTableConfig
from lakeloom.deployment.inference_log import META_COLUMNS, InferenceLogger, LogEntry


def _rows(registry: Registry, table: str, where: str, expect: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if registry.ws.tables.exists(table):
            rows = registry.ws.sql(f"select * from {table} where {where} order by row").to_pylist()
            if len(rows) >= expect:
                return rows
        time.sleep(0.2)
    raise AssertionError(f"{expect} rows never reached {table}: {rows}")


def test_a_request_becomes_typed_rows(main_endpoint: Endpoint, registry: Registry) -> None:
    frame = registry.frame.iloc[10:13][COLUMNS]
    payload = {"dataframe_records": records(frame)}
    resp = main_endpoint.post(payload, headers={"X-Request-ID": "log-1"})
    assert resp.status_code == 200
    rows = _rows(registry, main_endpoint.table, "request_id = 'log-1' and route <> 'shadow'", 3)
    assert len(rows) == 3
    schema = registry.ws.tables.describe(main_endpoint.table).schema
    types = {f.name: f.type for f in schema}
    assert types["tenure"] == pa.int64() and types["spend"] == pa.float64()
    assert types["plan"] == pa.string() and types["email_opt_in"] == pa.bool_()
    assert types["time"] == pa.timestamp("us", tz="UTC")
    assert set(META_COLUMNS) <= set(types)
    first = rows[0]
    assert first["endpoint"] == "churn" and first["status"] == 200
    assert first["route"] == resp.headers["x-lakeloom-route"]
    assert first["model_name"] == "churn_model"
    assert str(first["model_version"]) == resp.headers["x-lakeloom-model-version"]
    assert first["latency_ms"] > 0
    assert [r["row"] for r in rows] == [0, 1, 2]
    assert [r["tenure"] for r in rows] == frame["tenure"].tolist()
    # The body as sent, once per request (on its first row).
    assert json.loads(first["request"]) == payload
    assert [r["request"] for r in rows[1:]] == [None, None]
    predictions = resp.json()["predictions"]
    assert [json.loads(r["response"]) for r in rows] == predictions
    assert [r["prediction"] for r in rows] == [float(p) for p in predictions]


def test_errors_are_logged_without_features(main_endpoint: Endpoint, registry: Registry) -> None:
    resp = main_endpoint.raw(b"{oops", "application/json", headers={"X-Request-ID": "log-bad"})
    assert resp.status_code == 400
    rows = _rows(registry, main_endpoint.table, "request_id = 'log-bad'", 1)
    assert rows[0]["status"] == 400 and rows[0]["request"] == "{oops"
    assert json.loads(rows[0]["response"])["error_code"] == "BAD_REQUEST"


def test_table_is_compacted(main_endpoint: Endpoint, registry: Registry) -> None:
    payload = {"dataframe_records": records(registry.frame.head(1)[COLUMNS])}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        main_endpoint.post(payload)
        history = registry.ws.tables.history(main_endpoint.table)
        if any(h["operation"] == "OPTIMIZE" for h in history):
            return
        time.sleep(0.3)
    raise AssertionError("the inference table was never optimized")


def test_sampling_and_backpressure(registry: Registry) -> None:
    config = InferenceTableConfig(max_pending_rows=5)
    logger = InferenceLogger(registry.ws.tables, "lakeloom.inference_unit", "unit", config)
    entry = LogEntry("r", time.time(), "a", "m", 1, 200, 1.0, ("x",), ("double",), [(1.0,)], [0.5])
    for _ in range(8):
        logger.log(entry)
    assert logger.rows_dropped == 3
    assert logger.flush() == 5
    assert registry.ws.tables.read("lakeloom.inference_unit").num_rows == 5


def test_a_busy_endpoint_converts_early_and_commits_once_per_interval(
    registry: Registry,
) -> None:
    """A quarter of max_pending_rows waiting wakes the writer to convert them to Arrow (so
    they no longer count against the limit); it commits at the interval (an hour here), or
    once max_pending_rows are converted."""
    config = InferenceTableConfig(max_pending_rows=40, flush_interval_s=3600)
    logger = InferenceLogger(registry.ws.tables, "lakeloom.inference_early", "early", config)
    rows = [(float(i),) for i in range(10)]
    entry = LogEntry("r", time.time(), "a", "m", 1, 200, 1.0, ("x",), ("double",), rows, [0.5] * 10)

    def wait(condition: Any) -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert condition(), logger.status()

    logger.start()
    try:
        for n in range(1, 4):
            logger.log(entry)
            wait(lambda n=n: logger._staged_rows == 10 * n)
            assert logger.status()["rows_pending"] == 0 and logger.rows_written == 0
        logger.log(entry)  # 40 rows converted: committed without waiting for the interval
        wait(lambda: logger.rows_written == 40)
        assert logger.rows_dropped == 0 and logger._staged_rows == 0
        logger.log(entry)
    finally:
        logger.stop()  # writes what is left
    assert logger.rows_written == 50
    assert registry.ws.tables.read("lakeloom.inference_early").num_rows == 50


def test_the_batcher_scores_and_logs_all_double_rows_as_one_matrix(registry: Registry) -> None:
    """The LightGBM fast path: one float64 matrix per batch, kept for the inference table."""
    import asyncio

    import numpy as np

    from lakeloom.deployment.batching import MicroBatcher
    from lakeloom.deployment.config import parse_model_ref
    from lakeloom.deployment.inference_log import build_table
    from lakeloom.deployment.models import load_version
    from lakeloom.deployment.protocol import ScoringInput

    handle = load_version(registry.ws.tracking, parse_model_ref("models:/lgb_model@live"), 1)
    schema = handle.input_schema
    assert schema is not None
    rng = np.random.default_rng(3)
    requests = [[tuple(rng.normal(size=6).tolist()) for _ in range(n)] for n in (3, 1, 5)]
    requests[1] = [(float("nan"), *requests[1][0][1:])]  # a missing value

    async def score() -> list[tuple[ScoringInput, list[float]]]:
        batcher = MicroBatcher("unit", asyncio.get_running_loop(), max_batch_size=64)
        try:
            inputs = [ScoringInput(schema.names, schema.types, rows) for rows in requests]
            futures = [batcher.submit(handle, data) for data in inputs]
            answers = await asyncio.gather(*futures)
        finally:
            batcher.close()
        return [(data, preds) for data, (_, preds) in zip(inputs, answers, strict=True)]

    scored = asyncio.run(score())
    for data, preds in scored:
        assert data.matrix is not None and data.matrix.dtype == np.float64
        assert np.array_equal(data.matrix, np.array(data.rows, dtype=np.float64), equal_nan=True)
        assert preds == handle.predict(schema.names, schema.types, data.rows)
    entries = [
        LogEntry("r", time.time(), "a", "m", 1, 200, 1.0, d.columns, d.types, d.rows, p, matrix=m)
        for d, p in scored
        for m in (d.matrix,)
    ]
    table = build_table(entries, "unit").to_pylist()
    assert [r[schema.names[0]] for r in table] == [
        None if np.isnan(row[0]) else row[0] for rows in requests for row in rows
    ]


def test_batches_take_whole_requests_up_to_the_cap() -> None:
    """While the worker predicts, requests queue; the next call takes whole requests up to
    max_batch_size rows (a request larger than the cap goes alone, never split)."""
    import asyncio
    import threading

    from lakeloom.deployment.batching import MicroBatcher
    from lakeloom.deployment.protocol import ScoringInput

    release = threading.Event()
    calls: list[int] = []

    class Handle:
        name, version, input_schema = "m", 1, None

        def predict(self, columns: Any, types: Any, rows: list[Any]) -> list[float]:
            calls.append(len(rows))
            release.wait(10)  # the first call holds the worker while the others queue
            return [float(r[0]) for r in rows]

        def warm_up(self) -> None:
            pass

    sizes = [1, 100, 100, 50, 300, 20]

    async def score() -> list[list[float]]:
        batcher = MicroBatcher("cap", asyncio.get_running_loop(), max_batch_size=250)
        handle = Handle()
        try:
            inputs = [ScoringInput(("x",), ("long",), [(i,)] * n) for i, n in enumerate(sizes)]
            first = batcher.submit(handle, inputs[0])
            while not calls:  # the worker is busy with the first request
                await asyncio.sleep(0.01)
            rest = [batcher.submit(handle, data) for data in inputs[1:]]
            release.set()
            answers = await asyncio.gather(first, *rest)
        finally:
            batcher.close()
        return [preds for _, preds in answers]

    answers = asyncio.run(score())
    assert calls == [1, 250, 300, 20]  # 100 + 100 + 50; 300 alone; then 20
    assert answers == [[float(i)] * n for i, n in enumerate(sizes)]


def test_staged_tables_whose_inputs_clash_are_committed_one_by_one(registry: Registry) -> None:
    """Two conversions whose same-named input has clashing types cannot be one table: each is
    appended on its own, the second without its typed columns, and no row is lost."""
    config = InferenceTableConfig(flush_interval_s=3600)
    logger = InferenceLogger(registry.ws.tables, "lakeloom.inference_clash", "clash", config)
    first = LogEntry("a", time.time(), "a", "m", 1, 200, 1.0, ("x",), ("double",), [(1.5,)], [0])
    second = LogEntry("b", time.time(), "b", "m", 1, 200, 1.0, ("x",), ("string",), [("s",)], [1])
    logger.log(first)
    logger._stage()
    logger.log(second)
    assert logger.flush() == 2
    assert logger.write_errors == 0
    rows = registry.ws.sql("select request_id, x from lakeloom.inference_clash order by 1")
    assert rows.to_pylist() == [{"request_id": "a", "x": 1.5}, {"request_id": "b", "x": None}]
