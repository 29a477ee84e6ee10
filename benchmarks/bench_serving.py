"""Real-time serving: lakeloom's endpoint against ``mlflow models serve`` and a bare baseline.

The same LightGBM booster (registered in a temporary workspace) is served three ways, each
by one uvicorn worker pinned to CPU 0 with ``taskset``:

* lakeloom: ``lakeloom serve --model models:/bench_model@production`` in its default
  configuration (metrics and the inference table on, micro-batching, schema checks);
* mlflow: ``mlflow models serve -m models:/bench_model@production --env-manager local``;
* bare: a minimal ASGI app (in this file) that parses ``dataframe_split`` and predicts the
  rows queued by concurrent requests together with the booster (up to 64 per call), on
  the event loop, with nothing else: the ceiling for Python serving on this stack.

wrk (1 thread, 32 connections) runs pinned to CPU 1 and posts one-row requests, then
100-row requests. The three servers run side by side (idle but one at a time) and the runs
are interleaved, round after round, so that a busy moment on a shared machine hits all of
them; the run with the median throughput is kept. The script prints every run, the
medians, the ratios against the goals, and writes them to ``benchmarks/RESULTS.md``
(section "Serving (<HTTP stack>)"). Exit code 0 when every goal is met, 1 when one is
missed, 2 on errors.

    python benchmarks/bench_serving.py                # 3 rounds of 10 s runs
    python benchmarks/bench_serving.py --stack h11    # uvicorn's pure-Python parts
    python benchmarks/bench_serving.py --duration 5 --repeat 1   # quicker, noisier
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FEATURES = 10
TREES = 100
CONNECTIONS = 32
GOALS = {
    "throughput_vs_mlflow": 20.0,  # lakeloom req/s >= 20x mlflow (1 row)
    "p99_vs_mlflow": 0.1,  # lakeloom p99 <= 1/10 of mlflow's (1 row)
    "vs_bare": 0.6,  # lakeloom req/s >= 60% of the bare micro-batching app (1 row)
    "rows100_vs_mlflow": 5.0,  # lakeloom req/s >= 5x mlflow (100 rows)
}
BIN = Path(sys.executable).parent


# -- the bare baseline -------------------------------------------------------------------
def bare_app(model_file: str, max_batch: int = 64) -> Any:
    """A raw ASGI app: dataframe_split rows queued and predicted together, on the loop."""
    import asyncio
    import gc

    import lightgbm as lgb
    import numpy as np

    booster = lgb.Booster(model_file=model_file)
    gc.collect()
    gc.freeze()  # the same start-up tuning lakeloom's endpoint does
    pending: list[tuple[list[list[float]], asyncio.Future[Any]]] = []
    scheduled = False

    def flush() -> None:
        nonlocal scheduled, pending
        scheduled = False
        while pending:
            batch, rows = [], 0
            while pending and (not batch or rows + len(pending[0][0]) <= max_batch):
                item = pending.pop(0)
                batch.append(item)
                rows += len(item[0])
            matrix = np.array([r for rows_, _ in batch for r in rows_], dtype=np.float64)
            out = booster.predict(matrix).tolist()
            start = 0
            for rows_, fut in batch:
                fut.set_result(out[start : start + len(rows_)])
                start += len(rows_)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal scheduled
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        rows = json.loads(body)["dataframe_split"]["data"]
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        pending.append((rows, fut))
        if not scheduled:
            scheduled = True
            loop.call_soon(flush)
        out = json.dumps({"predictions": await fut}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(out)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


# -- helpers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install -y wrk) ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
        if not found:
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True
            )
            found = shutil.which("wrk")
    if not found:
        print("error: wrk is not installed (apt-get install wrk) and could not be installed")
        sys.exit(2)
    return found


def wait_ready(url: str, payload: bytes, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            req = urllib.request.Request(
                url, data=payload, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Result:
    rps: float
    p99_ms: float
    p50_ms: float
    requests: int
    non_2xx: int
    errors: int


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(wrk: str, url: str, body: str, duration: int, workdir: Path) -> Result:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    cmd = ["taskset", "-c", "1", wrk, "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency"]
    out = subprocess.run(
        [*cmd, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Result(
        rps,
        p99,
        p50,
        total,
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
    )


# -- the benchmark ------------------------------------------------------------------------
def prepare(root: Path) -> tuple[dict[str, str], str, list[str]]:
    """A workspace with the booster registered as bench_model@production."""
    import lightgbm as lgb
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from lakeloom import Workspace

    ws = Workspace.init(root / "ws")
    rng = np.random.default_rng(7)
    columns = [f"x{i}" for i in range(FEATURES)]
    X = pd.DataFrame(rng.normal(size=(5000, FEATURES)), columns=columns)
    y = ((X.x0 + X.x1 * X.x2 + rng.normal(scale=0.5, size=len(X))) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "num_leaves": 31}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=TREES)
    model_file = str(root / "booster.txt")
    booster.save_model(model_file)
    mlflow.set_experiment("bench_serving")
    with mlflow.start_run():
        mlflow.lightgbm.log_model(
            booster,
            name="model",
            signature=infer_signature(X, booster.predict(X)),
            input_example=X.head(2),
            registered_model_name="bench_model",
        )
    ws.mlflow_client.set_registered_model_alias("bench_model", "production", 1)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": ws.tracking.tracking_uri,
        "MLFLOW_REGISTRY_URI": ws.tracking.registry_uri,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "LAKELOOM_WORKSPACE": ws.root,
    }
    ws.close()
    return env, model_file, columns


def body(columns: list[str], rows: int, seed: int = 3) -> str:
    import numpy as np

    data = np.random.default_rng(seed).normal(size=(rows, len(columns))).round(6).tolist()
    return json.dumps({"dataframe_split": {"columns": columns, "data": data}})


def server_cmd(kind: str, port: int, model_file: str) -> list[str]:
    pin = ["taskset", "-c", "0"]
    if kind == "lakeloom":
        return [
            *pin,
            str(BIN / "lakeloom"),
            "serve",
            "--model",
            "models:/bench_model@production",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    if kind == "mlflow":
        return [
            *pin,
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            "models:/bench_model@production",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    return [*pin, sys.executable, __file__, "--bare-app", model_file, "--port", str(port)]


def measure(
    kinds: list[str],
    env: dict[str, str],
    model_file: str,
    bodies: dict[str, str],
    args: Any,
    work: Path,
) -> dict[str, dict[str, Result]]:
    """Start every server (all pinned to CPU 0, idle but one at a time), then interleave.

    Each round runs wrk against every server in turn, so a noisy moment on a shared machine
    hits all of them alike; the run with the median throughput is kept per server.
    """
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    logs = []
    runs: dict[tuple[str, str], list[Result]] = {}
    try:
        for kind in kinds:
            port = free_port()
            urls[kind] = f"http://127.0.0.1:{port}/invocations"
            logs.append(open(work / f"{kind}.log", "wb"))
            procs[kind] = subprocess.Popen(
                server_cmd(kind, port, model_file),
                env=env,
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
            )
        for kind in kinds:
            wait_ready(urls[kind], bodies["1 row"].encode(), procs[kind], timeout=300)
            for payload in bodies.values():
                run_wrk(args.wrk, urls[kind], payload, 2, work)  # warm-up
        for round_ in range(args.repeat):
            for label, payload in bodies.items():
                for kind in kinds:
                    r = run_wrk(args.wrk, urls[kind], payload, args.duration, work)
                    runs.setdefault((kind, label), []).append(r)
                    print(
                        f"  round {round_ + 1} {kind:<9} {label:<8} {r.rps:9.0f} req/s  "
                        f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  "
                        f"non-2xx {r.non_2xx}  socket errors {r.errors}",
                        flush=True,
                    )
        if "lakeloom" in urls:
            print_logging(urls["lakeloom"].replace("/invocations", "/ready"))
    finally:
        for proc in procs.values():
            stop(proc)
        for log in logs:
            log.close()
    results: dict[str, dict[str, Result]] = {}
    for (kind, label), found in runs.items():
        ordered = sorted(found, key=lambda r: r.rps)
        median = ordered[len(ordered) // 2]
        median.non_2xx = sum(r.non_2xx for r in found)  # any failure in any run counts
        results.setdefault(kind, {})[label] = median
    return results


def print_logging(ready_url: str) -> None:
    """What lakeloom's inference table kept up with (rows are dropped, not waited for, when
    its low-priority writer falls behind a saturated core)."""
    with urllib.request.urlopen(ready_url, timeout=30) as resp:
        table = json.loads(resp.read())["inference_table"]
    print(
        f"  lakeloom inference table: {table['rows_written']:,} rows written, "
        f"{table['rows_pending']:,} pending, {table['rows_dropped']:,} dropped",
        flush=True,
    )


def report(res: dict[str, dict[str, Result]], args: Any) -> tuple[str, bool]:
    lk, ml, bare = res["lakeloom"], res["mlflow"], res["bare"]
    one, hundred = "1 row", "100 rows"
    checks = [
        (
            "lakeloom / mlflow throughput, 1 row",
            lk[one].rps / ml[one].rps,
            f">= {GOALS['throughput_vs_mlflow']:g}x",
            lk[one].rps / ml[one].rps >= GOALS["throughput_vs_mlflow"],
        ),
        (
            "lakeloom / mlflow p99, 1 row",
            lk[one].p99_ms / ml[one].p99_ms,
            f"<= {GOALS['p99_vs_mlflow']:g}x",
            lk[one].p99_ms / ml[one].p99_ms <= GOALS["p99_vs_mlflow"],
        ),
        (
            "lakeloom / bare micro-batching throughput, 1 row",
            lk[one].rps / bare[one].rps,
            f">= {GOALS['vs_bare']:g}x",
            lk[one].rps / bare[one].rps >= GOALS["vs_bare"],
        ),
        (
            "lakeloom / mlflow throughput, 100 rows",
            lk[hundred].rps / ml[hundred].rps,
            f">= {GOALS['rows100_vs_mlflow']:g}x",
            lk[hundred].rps / ml[hundred].rps >= GOALS["rows100_vs_mlflow"],
        ),
        (
            "lakeloom non-2xx responses",
            float(lk[one].non_2xx + lk[hundred].non_2xx),
            "== 0",
            lk[one].non_2xx + lk[hundred].non_2xx == 0,
        ),
    ]
    stack = _stack(args.stack)
    lines = [
        f"## Serving ({_stack(args.stack)})",
        "",
        f"`benchmarks/bench_serving.py`, {time.strftime('%Y-%m-%d')}: LightGBM ({FEATURES} "
        f"features, {TREES} trees), one uvicorn worker pinned to CPU 0, wrk -t1 "
        f"-c{CONNECTIONS} -d{args.duration}s pinned to CPU 1 (median of {args.repeat} runs), "
        f"127.0.0.1. HTTP stack: {stack}. Load average of the machine at the start and end "
        f"of the run: {args.load_before:.1f} and {os.getloadavg()[0]:.1f} (other jobs on a "
        "shared machine preempt the pinned server: p99 latencies suffer most).",
        "",
        "| server | payload | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind in ("lakeloom", "mlflow", "bare"):
        for label, r in res[kind].items():
            lines.append(
                f"| {kind} | {label} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                f"{r.non_2xx} |"
            )
    lines += ["", "| check | ratio | goal | result |", "|---|---:|---|---|"]
    for name, ratio, goal, ok in checks:
        lines.append(f"| {name} | {ratio:.2f} | {goal} | {'pass' if ok else 'FAIL'} |")
    return "\n".join(lines) + "\n", all(c[3] for c in checks)


def _stack(choice: str) -> str:
    import importlib.util

    if choice == "h11":
        return "uvicorn + h11 + asyncio"
    parts = ["uvicorn"]
    parts.append("httptools" if importlib.util.find_spec("httptools") else "h11")
    parts.append("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    return " + ".join(parts)


def write_results(section: str) -> None:
    path = Path(__file__).with_name("RESULTS.md")
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    title = section.splitlines()[0]
    pattern = re.compile("^" + re.escape(title) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text + "\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="wrk runs per server and payload (median kept)"
    )
    parser.add_argument(
        "--stack",
        choices=["auto", "h11"],
        default="auto",
        help="auto: uvicorn's fastest installed parts (httptools, uvloop); h11: pure Python",
    )
    parser.add_argument("--only", choices=["lakeloom", "mlflow", "bare"], action="append")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--bare-app", metavar="MODEL_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_app:
        import uvicorn

        uvicorn.run(
            bare_app(args.bare_app),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
            http=os.environ.get("UVICORN_HTTP", "auto"),  # type: ignore[arg-type]
            loop=os.environ.get("UVICORN_LOOP", "auto"),  # type: ignore[arg-type]
        )
        return 0
    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        print("error: needs taskset and at least 2 CPUs (server and load generator pinned apart)")
        return 2
    args.wrk = ensure_wrk()
    args.load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="lakeloom-bench-serving-"))
    try:
        env, model_file, columns = prepare(work)
        if args.stack == "h11":  # honoured by uvicorn's CLI (mlflow), lakeloom and the bare app
            env.update(UVICORN_HTTP="h11", UVICORN_LOOP="asyncio")
        bodies = {"1 row": body(columns, 1), "100 rows": body(columns, 100)}
        kinds = args.only or ["lakeloom", "mlflow", "bare"]
        results = measure(kinds, env, model_file, bodies, args, work)
        if len(results) < 3:
            code = 0
        else:
            section, ok = report(results, args)
            print()
            print(section)
            if not args.no_write:
                write_results(section)
            code = 0 if ok else 1
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"error: {exc}; server logs kept in {work}")
        return 2
    shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
