"""The ``monitor`` step kind: drift, data quality and latency of an endpoint or a table.

It runs :func:`lakeloom.monitoring.monitor`, prints the most drifted features and the
report's path, and records the monitoring tables it appended to::

    [[steps]]
    name = "monitor"
    kind = "monitor"
    endpoint = "churn"
    baseline = "ml.churn_training"       # or "models:/churn_model@production"
    report = "reports/monitor_churn.html"

A relative ``report`` path lies in the workspace folder. With ``fail_on_drift = true`` a
drift fails the step (and the run).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from lakeloom.errors import PipelineError
from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = ["MonitorParams", "monitor_step"]


@dataclass(frozen=True)
class MonitorParams:
    """Keys of a ``monitor`` step."""

    baseline: str
    endpoint: str | None = None
    table: str | None = None
    name: str | None = None
    window: str | None = None
    time_column: str | None = None
    slice: str | None = None
    columns: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    labels: str | None = None
    join_key: str | None = None
    label_column: str | None = None
    report: str | None = "reports/monitor.html"
    webhook: str | None = None
    fail_on_drift: bool = False
    #: Most drifted features printed.
    top: int = 5

    def __post_init__(self) -> None:
        if (self.endpoint is None) == (self.table is None):
            raise ValueError("give exactly one of the keys 'endpoint' and 'table'")
        if self.top < 1:
            raise ValueError("key 'top' must be >= 1")


@step_kind("monitor")
def monitor_step(ctx: StepContext, params: MonitorParams) -> str | None:
    """Compare an endpoint's traffic or a table with a baseline; print the most drifted."""
    ws = ctx.workspace
    report = params.report
    if report is not None and ws.storage.is_local and not Path(report).is_absolute():
        report = str(Path(ws.root) / report)
    if params.table is not None:
        ctx.used(params.table)
    result = ws.monitor(
        baseline=params.baseline,
        endpoint=params.endpoint,
        table=params.table,
        name=params.name,
        window=params.window,
        time_column=params.time_column,
        slice=params.slice,
        columns=params.columns,
        exclude=params.exclude,
        labels=params.labels,
        join_key=params.join_key,
        label_column=params.label_column,
        report=report,
        webhook=params.webhook,
    )
    for table, version in result.tables.items():
        ctx.wrote(table, version)
    top = result.most_drifted(params.top)
    lines = [f"{'feature':<24} {'method':<15} {'statistic':>10} {'drift':>6}"]
    lines += [
        f"{f.column:<24} {f.method:<15} {f.statistic:>10.4f} {'yes' if f.drifted else 'no':>6}"
        for f in top
    ]
    lines.append(f"report: {result.report}")
    print("\n".join(lines), file=sys.stderr)
    drifted = [f.column for f in top if f.drifted]
    summary = (
        f"drift in {', '.join(drifted)}" if drifted else "no feature drift"
    ) + f"; report {result.report}"
    if params.fail_on_drift and result.drift_found:
        raise PipelineError(f"monitor {result.name}: {summary}")
    return summary
