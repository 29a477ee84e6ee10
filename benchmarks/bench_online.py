"""Online feature lookups: lakeloom against the bare store calls, measured in the same run.

A feature table of ``--entities`` keys (default 10,000) x 50 features (35 float64, 10
int64, 5 strings) is created in a workspace and published (``ws.features.publish_table``)
to each online store, then looked up in-process, from the SDK call to the returned values:
``ws.features.get_online_features(TABLE, keys)``, the call users make:

* one key per call, ``--single`` calls (default 20,000);
* 100 keys per call, ``--batch`` calls (default 2,000).

Baselines, over the same rows and the same connection settings:

* SQLite: a plain primary-key ``SELECT *`` of a 50-column row (``WHERE id = ?``; for 100
  keys ``WHERE id IN (...)``), fetched as tuples;
* Redis: ``HGETALL`` of a 50-field hash (for 100 keys, 100 ``HGETALL`` in one pipeline),
  values left as bytes.

Goals (p99): one key under 0.1 ms (SQLite) and 0.4 ms (Redis); 100 keys under 3 ms
(SQLite) and 10 ms (Redis). The script prints p50/p99/max for each, the ratio to the
baseline, and exits 1 when a goal is missed. Redis runs against ``--redis-url`` or, by
default, a ``redis-server`` it starts from PATH on a free port (``--no-redis`` skips it).
Goals are checked on wall-clock times; the ``cpu p99`` column (this thread's CPU time per
call) shows how much of a slow p99 was the machine rather than the code: on a busy machine
the process waits for a CPU, which wall-clock percentiles count and CPU time does not.
The SDK call and the baseline are timed in alternating blocks of calls, so both see the same
noise from the rest of the machine. Garbage collection stays on (as in a serving process); a
warm-up precedes each measurement.

    python benchmarks/bench_online.py
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

TABLE = "features.customer"
GOALS_MS = {("sqlite", 1): 0.1, ("sqlite", 100): 3.0, ("redis", 1): 0.4, ("redis", 100): 10.0}


def make_rows(entities: int, seed: int = 7) -> pa.Table:
    """``entities`` rows: id, ts and 50 features (35 float, 10 int, 5 string)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {
        "id": np.arange(entities, dtype=np.int64),
        "ts": pa.array(
            np.full(entities, 1_764_000_000_000_000, dtype=np.int64), pa.timestamp("us", "UTC")
        ),
    }
    for i in range(35):
        cols[f"f{i:02d}"] = rng.standard_normal(entities)
    for i in range(10):
        cols[f"i{i:02d}"] = rng.integers(0, 1_000_000, entities, dtype=np.int64)
    words = pa.array([f"segment_{i:03d}" for i in range(200)])
    for i in range(5):
        cols[f"s{i:02d}"] = words.take(pa.array(rng.integers(0, 200, entities)))
    return pa.table(cols)


def percentiles(wall_ns: Sequence[int], cpu_ns: Sequence[int]) -> dict[str, float]:
    """p50, p99 and max of the wall-clock times, and p99 of the CPU times, in milliseconds."""
    wall, cpu = sorted(wall_ns), sorted(cpu_ns)
    n = len(wall)
    p99 = min(n - 1, int(n * 0.99))
    return {
        "p50": wall[n // 2] / 1e6,
        "p99": wall[p99] / 1e6,
        "max": wall[-1] / 1e6,
        "cpu_p99": cpu[p99] / 1e6,
    }


def timed_calls(
    fn: Callable[[list[int]], object], key_sets: list[list[int]], wall: list[int], cpu: list[int]
) -> None:
    """Call ``fn`` once per key set, appending each call's wall-clock and CPU time (ns).

    The CPU time is this thread's only: it leaves out time the process spent waiting for the
    CPU (other processes) or for Redis, which tells a busy machine from slow code.
    """
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for keys in key_sets:
        c0 = cpu_clock()
        t0 = clock()
        fn(keys)
        t1 = clock()
        cpu.append(cpu_clock() - c0)
        wall.append(t1 - t0)


# -- baselines ------------------------------------------------------------------------------
def sqlite_baseline(path: str, data: pa.Table) -> tuple[Callable[[list[int]], object], Any]:
    """A plain table with the same rows, and a function fetching keys from it."""
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    names = [n for n in data.column_names if n != "ts"]
    cols = ", ".join(f'"{n}"' for n in names)
    con.execute(f"CREATE TABLE plain ({cols}, PRIMARY KEY (id)) WITHOUT ROWID")
    rows = zip(*[data.column(n).to_pylist() for n in names], strict=True)
    con.execute("BEGIN")
    con.executemany(f"INSERT INTO plain VALUES ({', '.join('?' * len(names))})", rows)
    con.execute("COMMIT")

    def fetch(keys: list[int]) -> object:
        if len(keys) == 1:
            return con.execute("SELECT * FROM plain WHERE id = ?", keys).fetchone()
        marks = ", ".join("?" * len(keys))
        return con.execute(f"SELECT * FROM plain WHERE id IN ({marks})", keys).fetchall()

    return fetch, con


def redis_baseline(url: str, data: pa.Table) -> Callable[[list[int]], object]:
    """The same rows as 50-field hashes, and a function fetching keys with HGETALL."""
    import redis

    client = redis.Redis.from_url(url)
    names = [n for n in data.column_names if n not in ("id", "ts")]
    values = [data.column(n).to_pylist() for n in names]
    pipe = client.pipeline(transaction=False)
    for r, key in enumerate(data.column("id").to_pylist()):
        pipe.hset(f"plain:{key}", mapping={n: v[r] for n, v in zip(names, values, strict=True)})
        if r % 1000 == 999:
            pipe.execute()
    pipe.execute()

    def fetch(keys: list[int]) -> object:
        if len(keys) == 1:
            return client.hgetall(f"plain:{keys[0]}")
        p = client.pipeline(transaction=False)
        for k in keys:
            p.hgetall(f"plain:{k}")
        return p.execute()

    return fetch


# -- redis-server ---------------------------------------------------------------------------
def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway redis-server on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: `make test` installs it (.ci/ensure-services.sh)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


# -- main -----------------------------------------------------------------------------------
def measure_pair(
    ours: Callable[[list[int]], object],
    base: Callable[[list[int]], object],
    key_sets: list[list[int]],
    blocks: int = 20,
) -> tuple[dict[str, float], dict[str, float]]:
    """Time ``ours`` and ``base`` in alternating blocks of calls, so that both see the same
    noise from the rest of the machine (blocks rather than single calls, so that neither
    pays for collecting the other's garbage)."""
    for keys in key_sets[: max(1, len(key_sets) // 10)]:
        ours(keys)
        base(keys)
    gc.collect()
    ours_wall: list[int] = []
    ours_cpu: list[int] = []
    base_wall: list[int] = []
    base_cpu: list[int] = []
    size = max(1, len(key_sets) // blocks)
    for start in range(0, len(key_sets), size):
        block = key_sets[start : start + size]
        timed_calls(ours, block, ours_wall, ours_cpu)
        timed_calls(base, block, base_wall, base_cpu)
    return percentiles(ours_wall, ours_cpu), percentiles(base_wall, base_cpu)


def open_workspace(root: str, kind: str, url: str) -> Any:
    """A workspace whose online store is ``kind`` (the facade's ``ws.features``)."""
    from lakeloom import Workspace

    os.environ["LAKELOOM_ONLINE_STORE_KIND"] = kind
    os.environ["LAKELOOM_ONLINE_STORE_URL"] = url
    try:
        return Workspace.init(root)
    finally:
        del os.environ["LAKELOOM_ONLINE_STORE_KIND"], os.environ["LAKELOOM_ONLINE_STORE_URL"]


def run_store(
    kind: str,
    ws: Any,
    baseline: Callable[[list[int]], object],
    data: pa.Table,
    singles: list[list[int]],
    batches: list[list[int]],
) -> list[dict[str, Any]]:
    """Publish ``data`` through ``ws.features`` and measure, for 1 and 100 keys,
    ``ws.features.get_online_features`` against the baseline (alternately)."""
    started = time.perf_counter()
    ws.features.create_table(TABLE, "id", "ts", df=data)
    report = ws.features.publish_table(TABLE)
    print(
        f"{kind}: published {report.rows_written:,} rows x 50 features in "
        f"{time.perf_counter() - started:.2f} s"
    )
    facade = ws.features.get_online_features
    sample = facade(TABLE, [singles[0][0]])[0]
    assert sample is not None and len(sample) == 51, sample
    results = []
    for keys_per_call, key_sets in ((1, singles), (100, batches)):
        ours, base = measure_pair(lambda keys: facade(TABLE, keys), baseline, key_sets)
        goal = GOALS_MS[(kind, keys_per_call)]
        results.append(
            {
                "store": kind,
                "keys": keys_per_call,
                "call": "ws.features.get_online_features",
                "lakeloom": ours,
                "baseline": base,
                "ratio_p99": ours["p99"] / base["p99"],
                "goal_p99_ms": goal,
                "met": ours["p99"] < goal,
            }
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)

    data = make_rows(args.entities)
    rng = random.Random(3)
    singles = [[rng.randrange(args.entities)] for _ in range(args.single)]
    batches = [rng.sample(range(args.entities), 100) for _ in range(args.batch)]
    results: list[dict[str, Any]] = []
    tmp = tempfile.mkdtemp(prefix="bench_online_")
    server: subprocess.Popen[bytes] | None = None
    try:
        ws = open_workspace(os.path.join(tmp, "ws_sqlite"), "sqlite", "")
        base, con = sqlite_baseline(os.path.join(tmp, "plain.db"), data)
        results += run_store("sqlite", ws, base, data, singles, batches)
        ws.close()
        con.close()
        if not args.no_redis:
            url = args.redis_url
            if not url:
                server, url = start_redis()
            ws = open_workspace(os.path.join(tmp, "ws_redis"), "redis", url + "?prefix=bench")
            results += run_store("redis", ws, redis_baseline(url, data), data, singles, batches)
            ws.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"{'store':<7} {'keys':>4} {'lakeloom p50':>12} {'p99':>8} {'max':>8} "
        f"{'cpu p99':>8}  "
        f"{'baseline p50':>12} {'p99':>8}  {'p99 ratio':>9}  {'goal p99':>8}  met"
    )
    for r in results:
        ours, base = r["lakeloom"], r["baseline"]
        print(
            f"{r['store']:<7} {r['keys']:>4} {ours['p50']:>9.4f} ms "
            f"{ours['p99']:>8.4f} {ours['max']:>8.3f} {ours['cpu_p99']:>8.4f}  "
            f"{base['p50']:>9.4f} ms {base['p99']:>8.4f}  "
            f"{r['ratio_p99']:>8.2f}x  {r['goal_p99_ms']:>5.1f} ms  {'yes' if r['met'] else 'NO'}"
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        "(lakeloom: ws.features.get_online_features; baselines: SQLite plain PK SELECT, Redis "
        f"HGETALL, timed in alternating blocks; {os.cpu_count()} CPUs, load average {load}; "
        "garbage collection on)"
    )
    if args.json:
        print(json.dumps(results, indent=2))
    missed = [r for r in results if not r["met"]]
    for r in missed:
        print(
            f"goal missed: {r['store']} {r['keys']} key(s): "
            f"p99 {r['lakeloom']['p99']:.4f} ms > {r['goal_p99_ms']} ms",
            file=sys.stderr,
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
