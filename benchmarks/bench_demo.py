"""The demo's duration: ``lakeloom demo`` end to end, in a fresh process, against its limit.

``make demo`` must finish in under 3 minutes on a 2-core machine after installation, at the
default size (5,000 customers). This script runs ``lakeloom demo`` in a new temporary
workspace as a user would (a fresh process: imports, MLflow store creation and all), times it,
and reports the slowest steps from the run's own log. As a baseline it times, in the same run,
the bare start of a Python process that imports lakeloom's heavy dependencies (MLflow,
scikit-learn, DuckDB, delta-rs): the part of any command's time that lakeloom cannot save.

Exits 1 when the demo fails or takes longer than ``--limit`` seconds (default 180).

    python benchmarks/bench_demo.py [--customers 5000] [--limit 180]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
IMPORTS = "import mlflow, sklearn.ensemble, duckdb, deltalake, pyarrow, pandas"


def timed(command: list[str], cwd: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall-clock seconds of ``command`` run to completion, and its result."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LAKELOOM_WORKSPACE", None)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - began, done


def main() -> int:
    """Run the benchmark; 0 when the demo ends within the limit."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=None, help="default: the pipeline's")
    parser.add_argument("--limit", type=float, default=180.0, help="seconds (default 180)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lakeloom-bench-demo-") as tmp:
        base_s, base = timed([sys.executable, "-c", IMPORTS], tmp)
        if base.returncode != 0:
            print(base.stderr, file=sys.stderr)
            return 1
        command = [str(BIN / "lakeloom"), "--json", "demo", "--workspace", f"{tmp}/ws"]
        if args.customers is not None:
            command += ["--customers", str(args.customers)]
        demo_s, done = timed(command, tmp)
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            print(f"FAIL: lakeloom demo exited with {done.returncode}")
            return 1
        result = json.loads(done.stdout)

    steps = sorted(result["steps"], key=lambda s: -(s.get("duration_s") or 0.0))
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print(f"baseline: python + heavy imports     {base_s:7.1f} s")
    pipeline_s = result["duration_s"]
    print(f"lakeloom demo (fresh process)       {demo_s:7.1f} s  (pipeline {pipeline_s} s)")
    print("slowest steps:")
    for step in steps[:6]:
        print(f"  {step['step']:<18} {step['kind']:<16} {step.get('duration_s') or 0.0:7.1f} s")
    ratio = demo_s / args.limit
    verdict = "met" if demo_s <= args.limit else "MISSED"
    print(f"demo / limit: {demo_s:.1f} s / {args.limit:.0f} s = {ratio:.2f} (<= 1: {verdict})")
    print(f"demo / baseline: {demo_s / base_s:.1f}x the bare imports")
    return 0 if demo_s <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
