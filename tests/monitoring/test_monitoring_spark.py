"""A monitoring run on the Spark engine finds what the local engine finds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from monitoring_support import END, customers, log_traffic

from lakeloom import Workspace

DAY = timedelta(days=1)


@pytest.mark.spark
def test_spark_and_local_monitors_agree(tmp_path: Path) -> None:
    path = tmp_path / "ws"
    local = Workspace.init(path)
    try:
        local.tables.write("ml.training", customers(3000, seed=1))
        log_traffic(local, "churn", customers(1500, seed=2), start=END - 2 * DAY, span=DAY)
        log_traffic(
            local,
            "churn",
            customers(1500, seed=3, shift=1.0, new_plan=0.1, null_spend=0.2),
            start=END - DAY,
            span=DAY,
        )
        expected = local.monitor(
            endpoint="churn", baseline="ml.training", window="1d", slice="plan", name="local"
        )
    finally:
        local.close()
    spark = Workspace.open(path, engine="spark")
    try:
        found = spark.monitor(
            endpoint="churn", baseline="ml.training", window="1d", slice="plan", name="spark"
        )
    finally:
        spark.close()
    assert found.rows == expected.rows
    key = lambda f: (f.column, f.kind, f.reference, f.method, f.slice)  # noqa: E731
    mine = {key(f): f for f in found.findings}
    theirs = {key(f): f for f in expected.findings}
    assert set(mine) == set(theirs)
    for k, f in theirs.items():
        assert mine[k].drifted == f.drifted, k
        assert mine[k].statistic == pytest.approx(f.statistic, rel=1e-9, abs=1e-12), k
    assert len(found.routes) == len(expected.routes) == 1
    mine_route, their_route = found.routes[0].to_dict(), expected.routes[0].to_dict()
    assert mine_route.pop("route") == their_route.pop("route") == "champion"
    assert mine_route == pytest.approx(their_route, rel=1e-9)
    assert {f.column for f in found.drifted} >= {"spend", "plan"}
