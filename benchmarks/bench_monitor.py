"""Monitoring a large inference table in bounded memory: lakeloom's profiles against pandas.

The script writes an inference table of ``--rows`` rows (default 10M; ``--quick``: 1M) shaped
like ``lakeloom.inference_<endpoint>`` (time, route, status, latency, prediction and four
typed input columns over two days) and a 100k-row baseline table, then measures, each in a
fresh process (time, and peak RSS from ``getrusage``; the table is built in a process of
its own too, since a forked child starts with its parent's peak RSS):

* lakeloom: ``ws.monitor(endpoint=..., baseline=..., window="1d")``: a whole monitoring run
  (the baseline profiled twice, the current and the previous window, the routes' latency),
  every statistic a DuckDB aggregate over the Delta table in place, plus the Delta writes of
  the results;
* pandas (the baseline): the table loaded into pandas and ``describe(include="all")`` plus
  ``value_counts`` of the categorical columns: what a monitoring script that loads the
  inference table does before it computes anything.

Goal: lakeloom's peak RSS stays under 1 GiB (bounded: it must not grow with the table);
the script prints both runs, the pandas/lakeloom ratios, and exits 1 when the goal is
missed (2 on an error).

    python benchmarks/bench_monitor.py            # 10M rows
    python benchmarks/bench_monitor.py --quick    # 1M rows
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

GOAL_RSS_MB = 1024.0
ENDPOINT = "bench"
CHUNK = 1_000_000
END = datetime(2026, 11, 20, tzinfo=UTC)


def _chunk(rows: int, offset: int, total: int, seed: int) -> pa.RecordBatch:
    rng = np.random.default_rng(seed)
    start = int((END.timestamp() - 2 * 86_400) * 1_000_000)
    step = 2 * 86_400 * 1_000_000 // total
    times = start + (np.arange(rows, dtype=np.int64) + offset) * step
    late = (np.arange(rows) + offset) >= total // 2  # the second day is drifted
    plans = np.array(["basic", "pro", "max", "enterprise"])
    plan_idx = rng.choice(3, rows, p=[0.5, 0.3, 0.2])
    plan_idx = np.where(late & (rng.random(rows) < 0.05), 3, plan_idx)
    return pa.RecordBatch.from_pydict(
        {
            "request_id": pa.array(np.char.add("r", (np.arange(rows) + offset).astype(str))),
            "row": pa.array(np.zeros(rows, dtype=np.int32)),
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "endpoint": pa.array([ENDPOINT] * rows, pa.string()),
            "route": pa.array(np.where(rng.random(rows) < 0.9, "champion", "challenger")),
            "model_name": pa.array(["churn_model"] * rows, pa.string()),
            "model_version": pa.array(np.ones(rows, dtype=np.int64)),
            "status": pa.array(np.where(rng.random(rows) < 0.001, 500, 200).astype(np.int32)),
            "latency_ms": rng.gamma(2.0, 3.0, rows),
            "prediction": rng.random(rows),
            "tenure": rng.integers(1, 60, rows, dtype=np.int64),
            "spend": rng.normal(60.0, 20.0, rows) + np.where(late, 10.0, 0.0),
            "plan": pa.array(plans[plan_idx]),
            "email_opt_in": pa.array(rng.random(rows) < 0.4),
        }
    )


def build(root: str, rows: int) -> None:
    """The inference table (streamed, one commit) and the baseline."""
    from lakeloom import Workspace

    ws = Workspace.init(root)
    first = _chunk(1, 0, rows, 0)

    def batches() -> Iterator[pa.RecordBatch]:
        for i, offset in enumerate(range(0, rows, CHUNK)):
            yield _chunk(min(CHUNK, rows - offset), offset, rows, i + 1)

    reader = pa.RecordBatchReader.from_batches(first.schema, batches())
    ws.tables.write(f"lakeloom.inference_{ENDPOINT}", reader, system=True)
    base = pa.Table.from_batches([_chunk(100_000, 0, 10**12, 99)])
    ws.tables.write("ml.training", base.select(["tenure", "spend", "plan", "email_opt_in"]))
    ws.close()


def child(mode: str, root: str) -> None:
    """One measured run; prints its JSON and leaves with ``os._exit`` (no teardown)."""
    from lakeloom import Workspace

    t0 = time.perf_counter()
    ws = Workspace.open(root)
    summary: dict[str, object] = {}
    if mode == "lakeloom":
        result = ws.monitor(endpoint=ENDPOINT, baseline="ml.training", window="1d")
        summary = {
            "rows": result.rows,
            "drifted": sorted({f.column for f in result.drifted}),
        }
    else:
        frame = ws.tables.read(f"lakeloom.inference_{ENDPOINT}").to_pandas()
        frame.describe(include="all")
        for column in ("route", "plan", "email_opt_in", "status"):
            frame[column].value_counts()
        summary = {"rows": len(frame)}
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_mb": peak, **summary}))
    sys.stdout.flush()
    os._exit(0)


def measure(mode: str, root: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--root", root],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed ({done.returncode}): {done.stderr[-2000:]}")
    line = done.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(line)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="1M rows")
    parser.add_argument("--child", choices=["build", "lakeloom", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "build":
        build(args.root, args.rows)
        return 0
    if args.child:
        child(args.child, args.root)
    rows = 1_000_000 if args.quick else args.rows
    root = tempfile.mkdtemp(prefix="bench-monitor-")
    try:
        t0 = time.perf_counter()
        # Every step in a fresh process: a forked child starts with its parent's peak RSS
        # (Linux keeps the high-water mark across exec), so this process stays small.
        subprocess.run(
            [sys.executable, __file__, "--child", "build", "--root", root, "--rows", str(rows)],
            check=True,
        )
        print(f"built a {rows:,}-row inference table in {time.perf_counter() - t0:.1f} s")
        ours = measure("lakeloom", root)
        theirs = measure("pandas", root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'run':<10} {'seconds':>9} {'peak RSS MB':>12}")
    for r in (ours, theirs):
        print(f"{r['mode']!s:<10} {float(r['seconds']):>9.1f} {float(r['peak_mb']):>12.0f}")
    peak = float(ours["peak_mb"])
    print(
        f"ratios pandas/lakeloom: time "
        f"{float(theirs['seconds']) / float(ours['seconds']):.2f}x, "
        f"memory {float(theirs['peak_mb']) / peak:.2f}x"
    )
    print(f"lakeloom found drift in: {', '.join(ours.get('drifted', []))}")
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"(this process, whose peak a child inherits: {parent:.0f} MB)")
    ok = peak < GOAL_RSS_MB
    print(f"goal: lakeloom peak RSS < {GOAL_RSS_MB:.0f} MB: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
