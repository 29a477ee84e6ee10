"""The ``serve_demo`` pipeline step: traffic, a drifted second batch, the inference table."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deployment_support import COLUMNS, Registry

from lakeloom.pipelines.kinds.serve import NEW_CATEGORY, ServeDemoParams, serve_demo
from lakeloom.pipelines.steps import StepContext


def test_serve_step_sends_normal_then_drifted_traffic(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = registry.ws
    ws.tables.write("demo.serve_rows", pa.Table.from_pandas(registry.frame), mode="overwrite")
    ctx = StepContext(ws, "churn", "serve", "run0001abcdef")
    summary = serve_demo(
        ctx,
        ServeDemoParams(
            champion="models:/churn_model@production",
            challenger="models:/churn_model@challenger",
            data="demo.serve_rows",
            endpoint="serve_step",
            requests=60,
            drift_requests=60,
            concurrency=4,
        ),
    )
    assert summary is not None and "champion" in summary and "failed" not in summary
    assert "drift: 60 requests (tenure +" in summary and "spend 40% null" in summary
    printed = capsys.readouterr().err
    assert "req    champion" in printed and "drift  champion" in printed
    # The step flushed the inference table before it returned, and recorded its version.
    assert [o.table for o in ctx.outputs] == ["lakeloom.inference_serve_step"]
    log = ws.tables.read("lakeloom.inference_serve_step").to_pandas()
    log = log[log["request_id"].str.contains("-run0001a-")]
    normal = log[log["request_id"].str.startswith("req-")]
    drift = log[log["request_id"].str.startswith("drift-")]
    assert len(normal) == 60 and len(drift) == 60
    assert set(normal["route"]) <= {"champion", "challenger"} and (log["status"] == 200).all()
    # A shifted numeric column, a new category, a null spike: only in the drifted batch.
    assert drift["tenure"].mean() > normal["tenure"].mean() + registry.frame["tenure"].std()
    assert (drift["plan"] == NEW_CATEGORY).mean() == 0.5 and NEW_CATEGORY not in set(normal.plan)
    assert drift["spend"].isna().mean() == 0.4 and normal["spend"].notna().all()
    assert set(COLUMNS) <= set(log.columns)
