"""``lakeloom monitor`` (drift, data quality, latency) and ``lakeloom ab report`` (A/B tests).

Exit codes: 0 success (no drift, or drift without ``--fail-on-drift``); 1 drift found with
``--fail-on-drift``, or ``ab report --promote`` that did not promote; 2 any error.
"""

from __future__ import annotations

import click

from lakeloom.cli.output import err_console, kv_table, out_console, print_json, rows_table
from lakeloom.cli.state import common_options, get_state
from lakeloom.errors import InvalidArgument

__all__ = ["ab", "monitor"]


def _exit(code: int) -> None:
    if code:
        raise click.exceptions.Exit(code)


def _columns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise InvalidArgument(f"the column list {text!r} is empty; name columns as a,b,c")
    return names


@click.command(short_help="Monitor drift, data quality and latency against a baseline.")
@click.option("--endpoint", metavar="NAME", help="Monitor endpoint NAME's inference table.")
@click.option("--table", "table", metavar="T", help="Monitor table T instead.")
@click.option(
    "--baseline",
    required=True,
    metavar="TABLE|models:/NAME@ALIAS",
    help="A table (TABLE@vN for a version) or a registered model (its training set).",
)
@click.option("--window", metavar="DURATION", help="The current window, e.g. 1d (default: all).")
@click.option("--time-column", metavar="COL", help="The time column [default: time].")
@click.option("--slice", "slice_by", metavar="COL", help="Also compare each value of COL.")
@click.option("--columns", metavar="A,B", help="Compare only these columns.")
@click.option("--exclude", metavar="A,B", help="Leave these columns out.")
@click.option("--name", metavar="NAME", help="The monitor's name [default: the endpoint's].")
@click.option("--fail-on-drift", is_flag=True, help="Exit 1 when drift is found.")
@click.option("--webhook", metavar="URL", help="POST a JSON summary to URL.")
@click.option("--labels", metavar="T", help="Delayed labels: table T (with --join-key).")
@click.option("--join-key", metavar="K", help="The column joining labels to requests.")
@click.option("--label-column", metavar="COL", help="The label column of --labels.")
@click.option(
    "--estimate-performance",
    is_flag=True,
    help="Estimate accuracy from predicted probabilities (before labels arrive).",
)
@click.option("--report", "report_path", metavar="PATH", help="Write an HTML report to PATH.")
@common_options
def monitor(
    endpoint: str | None,
    table: str | None,
    baseline: str,
    window: str | None,
    time_column: str | None,
    slice_by: str | None,
    columns: str | None,
    exclude: str | None,
    name: str | None,
    fail_on_drift: bool,
    webhook: str | None,
    labels: str | None,
    join_key: str | None,
    label_column: str | None,
    estimate_performance: bool,
    report_path: str | None,
) -> None:
    """Compare an endpoint's traffic (--endpoint) or a table (--table) with a baseline.

    Numeric columns: Kolmogorov-Smirnov and Wasserstein; categorical: chi-squared and
    Jensen-Shannon; PSI for all (a test decides up to 1,000 baseline rows, a distance
    above). Also null rates, out-of-range values, unseen categories, schema changes and,
    for endpoints, traffic, errors and latency per route. Results are appended to
    lakeloom.monitor_<name>_profile and lakeloom.monitor_<name>_drift.

    Example: lakeloom monitor --endpoint churn --baseline models:/churn_model@production
    --window 1d --report monitor.html --fail-on-drift
    """
    state = get_state()
    ws = state.open()
    with err_console().status("profiling ..."):
        result = ws.monitor(
            baseline=baseline,
            endpoint=endpoint,
            table=table,
            name=name,
            window=window,
            time_column=time_column,
            slice=slice_by,
            columns=_columns(columns),
            exclude=_columns(exclude) or (),
            labels=labels,
            join_key=join_key,
            label_column=label_column,
            estimate_performance=estimate_performance,
            report=report_path,
            webhook=webhook,
        )
    code = result.exit_code if fail_on_drift else 0
    if state.json:
        print_json({**result.to_dict(), "exit_code": code})
        _exit(code)
        return
    console = out_console()
    verdict = "DRIFT FOUND" if result.drift_found else "no drift"
    console.print(
        kv_table(
            {
                "monitor": result.name,
                "data": result.source,
                "baseline": result.baseline.get("baseline"),
                "window": (
                    f"{result.window_start:%Y-%m-%d %H:%M} .. {result.window_end:%Y-%m-%d %H:%M}"
                    if result.window_start and result.window_end
                    else "all rows"
                ),
                "rows": ", ".join(f"{k} {v:,}" for k, v in result.rows.items()),
                "verdict": verdict,
                "report": result.report,
            },
            title="Monitor",
        )
    )
    console.print(
        rows_table(
            ["column", "kind", "method", "statistic", "p-value", "threshold", "drift"],
            [
                [f.column, f.kind, f.method, f.statistic, f.p_value, f.threshold, f.drifted]
                for f in result.most_drifted(15)
            ],
            title="Most drifted (vs baseline)",
        )
    )
    alarms = [f for f in result.drifted if f.kind in ("quality", "schema")]
    if alarms:
        console.print(
            rows_table(
                ["column", "check", "value", "slice", "detail"],
                [[f.column, f.method, f.statistic, f.slice, f.detail] for f in alarms],
                title="Data quality alarms",
            )
        )
    if result.routes:
        console.print(
            rows_table(
                ["route", "rows", "share", "error rate", "p50 ms", "p99 ms"],
                [
                    [r.route, r.rows, r.share, r.error_rate, r.latency_p50_ms, r.latency_p99_ms]
                    for r in result.routes
                ],
                title="Routes",
            )
        )
    if result.performance:
        keys = [k for k in result.performance[0] if k not in ("task",)]
        console.print(
            rows_table(
                keys, [[p.get(k) for k in keys] for p in result.performance], title="Performance"
            )
        )
    _exit(code)


@click.group(short_help="A/B tests of an endpoint's routes.")
def ab() -> None:
    """Analyse an endpoint's champion/challenger split from its inference table."""


@ab.command("report", short_help="Compare the challenger with the champion; recommend.")
@click.argument("endpoint")
@click.option(
    "--metric",
    type=click.Choice(["accuracy", "label_rate", "mae", "label_mean"]),
    default="accuracy",
    show_default=True,
    help="What to compare on the labelled requests.",
)
@click.option("--labels", required=True, metavar="T", help="The delayed labels table.")
@click.option("--join-key", required=True, metavar="K", help="Joins labels to requests.")
@click.option("--label-column", metavar="COL", help="The label column of --labels.")
@click.option("--champion", default="champion", show_default=True, help="The champion route.")
@click.option("--challenger", default="challenger", show_default=True, help="The challenger route.")
@click.option("--window", metavar="DURATION", help="Only the last DURATION of traffic.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance.")
@click.option("--power", type=float, default=0.8, show_default=True, help="Power for N.")
@click.option(
    "--promote", is_flag=True, help="Promote the challenger through the gate if recommended."
)
@click.option("--alias", default="production", show_default=True, help="Alias to promote to.")
@common_options
def ab_report_command(
    endpoint: str,
    metric: str,
    labels: str,
    join_key: str,
    label_column: str | None,
    champion: str,
    challenger: str,
    window: str | None,
    alpha: float,
    power: float,
    promote: bool,
    alias: str,
) -> None:
    """Traffic, latency and METRIC per route with intervals, a significance test and a
    recommendation: promote the challenger, keep the champion, or collect N more samples.

    Example: lakeloom ab report churn --metric accuracy --labels raw.churn_labels
    --join-key customer_id --promote
    """
    from lakeloom.durations import parse_duration
    from lakeloom.monitoring import MonitorContext
    from lakeloom.monitoring.ab import ab_report

    state = get_state()
    ws = state.open()
    report = ab_report(
        MonitorContext(ws.tables, ws.engine, ws.tracking),
        endpoint,
        metric=metric,
        labels=labels,
        join_key=join_key,
        label_column=label_column,
        champion=champion,
        challenger=challenger,
        window=parse_duration(window) if window else None,
        alpha=alpha,
        power=power,
        promote=promote,
        alias=alias,
    )
    if state.json:
        print_json(report.to_dict())
        _exit(report.exit_code)
        return
    console = out_console()
    rows = []
    for arm in (report.champion, report.challenger):
        t = arm.traffic
        rows.append(
            [
                arm.route,
                f"v{arm.model_version}" if arm.model_version is not None else None,
                t.share if t else None,
                t.error_rate if t else None,
                t.latency_p50_ms if t else None,
                arm.labelled,
                arm.value,
                arm.ci_low,
                arm.ci_high,
            ]
        )
    console.print(
        rows_table(
            [
                "route",
                "model",
                "share",
                "error rate",
                "p50 ms",
                "labelled",
                metric,
                "ci low",
                "ci high",
            ],
            rows,
            title=f"A/B on {endpoint}",
        )
    )
    console.print(
        kv_table(
            {
                "test": report.test,
                "difference": report.difference,
                "p-value": report.p_value,
                "recommendation": report.recommendation,
                "reason": report.reason,
                "more samples": report.more_samples,
                "promoted": report.promoted,
            }
        )
    )
    _exit(report.exit_code)
