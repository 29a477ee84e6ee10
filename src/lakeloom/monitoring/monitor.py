"""One monitoring run: profile the baseline and the current window, compare, record, report.

Every statistic comes from :meth:`Engine.profile` (DuckDB or Spark aggregates over the
tables in place): a run reads a few small profiles, never the rows, so a table of any size
is monitored in bounded memory. See ``docs/monitoring.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from lakeloom.durations import parse_duration
from lakeloom.engines.base import TableRef
from lakeloom.engines.delta_log import arrow_schema, open_delta
from lakeloom.errors import InvalidArgument
from lakeloom.monitoring.baseline import resolve_baseline
from lakeloom.monitoring.context import MonitorContext
from lakeloom.monitoring.drift import (
    Finding,
    drift_findings,
    quality_findings,
    schema_findings,
)
from lakeloom.monitoring.ops import LATENCY_EDGES, RouteStats, route_stats
from lakeloom.monitoring.profiles import (
    Profile,
    Source,
    column_kinds,
    numeric_edges,
    parse_profile,
)
from lakeloom.monitoring.result import INFERENCE_META, MonitorResult, inference_table
from lakeloom.monitoring.result_tables import check_monitor_name, run_row, write_results
from lakeloom.monitoring.sql_text import quote, timestamp

__all__ = ["monitor"]


def _and(*parts: str | None) -> str | None:
    kept = [f"({p})" for p in parts if p]
    return " AND ".join(kept) if kept else None


def _schema(ctx: MonitorContext, source: Source) -> pa.Schema:
    if isinstance(source.data, TableRef):
        return arrow_schema(open_delta(source.data, version=source.version))
    return source.data.schema


def _profile(
    ctx: MonitorContext,
    source: Source,
    kinds: dict[str, str],
    edges: dict[str, tuple[float, ...]],
    *,
    group_by: str | None = None,
    categorical: bool = True,
    top_k: int = 50,
) -> tuple[pa.Table, dict[str | None, Profile]]:
    from lakeloom.engines.profile_spec import NumericColumn, ProfileSpec

    spec = ProfileSpec(
        numeric=tuple(
            NumericColumn(c, edges.get(c, ())) for c, k in kinds.items() if k == "numeric"
        ),
        categorical=tuple(c for c, k in kinds.items() if k == "categorical") if categorical else (),
        top_k=top_k,
        filter=source.filter,
        group_by=group_by,
        version=source.version if isinstance(source.data, TableRef) else None,
    )
    raw = ctx.engine.profile(source.data, spec)
    return raw, parse_profile(raw)


def _window_end(ctx: MonitorContext, table: str, time_column: str) -> datetime | None:
    q = quote(time_column, ctx.engine.name)
    result = ctx.engine.to_arrow(ctx.tables.sql(f"select max({q}) as t from {table}"))
    value = result.column("t")[0].as_py() if result.num_rows else None
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidArgument(
            f"time column {time_column!r} of {table} is not a timestamp; pass --time-column"
        )
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def monitor(
    ctx: MonitorContext,
    *,
    baseline: str,
    endpoint: str | None = None,
    table: str | None = None,
    name: str | None = None,
    window: str | timedelta | None = None,
    time_column: str | None = None,
    slice: str | None = None,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    labels: str | None = None,
    join_key: str | None = None,
    label_column: str | None = None,
    estimate_performance: bool = False,
    report: str | Path | None = None,
    webhook: str | None = None,
    top_k: int = 50,
) -> MonitorResult:
    """Compare an endpoint's inference table (or any table) with a baseline; record it.

    The current data is the last ``window`` (ending at the newest row's time) or the whole
    table; with a window the previous window is a second reference. Findings are appended to
    ``lakeloom.monitor_<name>_profile`` / ``_drift``; ``report`` writes an HTML report;
    ``webhook`` receives a JSON summary. See ``docs/monitoring.md``.

    >>> result = ws.monitor(endpoint="churn", baseline="ml.churn_training",
    ...                     window="1d")  # doctest: +SKIP
    >>> [f.column for f in result.most_drifted()]  # doctest: +SKIP
    """
    if (endpoint is None) == (table is None):
        raise InvalidArgument("monitor needs exactly one of endpoint= (--endpoint) or table=")
    target = inference_table(endpoint) if endpoint is not None else str(table)
    name = check_monitor_name(
        name or endpoint or target.replace(".", "_").removeprefix("lakeloom_inference_")
    )
    if (labels is None) != (join_key is None):
        raise InvalidArgument("--labels and --join-key go together")
    width = parse_duration(window) if isinstance(window, str) else window
    if width is not None and width <= timedelta(0):
        raise InvalidArgument(f"window must be positive, got {window!r}")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise InvalidArgument(f"webhook {webhook!r} must be an http:// or https:// URL")
    ref = ctx.tables.resolve(target)
    version = ctx.tables.version(target)
    target_schema = arrow_schema(open_delta(ref, version=version))
    names = target_schema.names
    inference = all(c in names for c in ("route", "status", "latency_ms", "request_id"))
    time_col = time_column or ("time" if "time" in names else None)
    if time_column is not None and time_column not in names:
        raise InvalidArgument(f"table {target} has no time column {time_column!r}")
    if slice is not None and slice not in names:
        raise InvalidArgument(f"table {target} has no column {slice!r} to slice by")
    served = "status = 200 AND route <> 'shadow'" if inference else None
    start = end = prev_start = None
    if width is not None:
        if time_col is None:
            raise InvalidArgument(f"table {target} has no 'time' column: pass --time-column")
        end = _window_end(ctx, target, time_col)
        if end is None:
            raise InvalidArgument(f"table {target} has no rows to monitor")
        start, prev_start = end - width, end - 2 * width
    base = resolve_baseline(ctx, baseline)
    base_schema = _schema(ctx, base.source)

    skip = set(exclude) | set(base.keys) | ({base.label} if base.label else set())
    skip |= set(INFERENCE_META) if inference else set()
    skip |= {time_col} if time_col else set()
    named = columns is not None
    target_kinds = column_kinds(target_schema, tuple(skip), identifiers=named)
    base_kinds = column_kinds(base_schema, tuple(skip), identifiers=named)
    if columns is not None:
        unknown = [c for c in columns if c not in target_kinds or c not in base_kinds]
        if unknown:
            raise InvalidArgument(
                f"column(s) {', '.join(map(repr, unknown))} are not numeric or categorical "
                f"columns of both {target} and the baseline"
            )
        target_kinds = {c: target_kinds[c] for c in columns}
        base_kinds = {c: base_kinds[c] for c in columns}
    kinds = {c: k for c, k in target_kinds.items() if base_kinds.get(c) == k}
    findings: list[Finding] = schema_findings(
        base_kinds if not inference else {c: k for c, k in base_kinds.items() if c in names},
        target_kinds,
        missing_is_alarm=not inference,
    )
    kind_of = dict.fromkeys(kinds, "feature")
    predicted = inference and "prediction" in names
    if predicted:
        kind_of["prediction"] = "prediction"
    if not kinds and not predicted:
        raise InvalidArgument(
            f"{target} and the baseline {baseline} share no numeric or categorical column "
            "to compare"
        )

    def time_filter(lo: datetime | None, hi: datetime | None) -> str | None:
        if lo is None or hi is None or time_col is None:
            return None
        q = quote(time_col, ctx.engine.name)
        return f"{q} > {timestamp(lo)} AND {q} <= {timestamp(hi)}"

    def window_filter(lo: datetime | None, hi: datetime | None) -> str | None:
        return _and(served, time_filter(lo, hi))

    current = Source(ref, target, version, window_filter(start, end))
    previous = (
        Source(ref, target, version, window_filter(prev_start, start))
        if width is not None
        else None
    )
    # Pass 1: the baseline's ranges and categories, which fix the numeric edges.
    base_raw, base_first = _profile(ctx, base.source, kinds, {}, top_k=top_k)
    edges = {
        c: numeric_edges(base_first[None].numeric[c])
        for c, k in kinds.items()
        if k == "numeric" and None in base_first
    }
    all_kinds = dict(kinds)
    if predicted:
        pred_type = target_schema.field("prediction").type
        all_kinds["prediction"] = (
            "numeric"
            if pa.types.is_integer(pred_type) or pa.types.is_floating(pred_type)
            else "categorical"
        )
        if all_kinds["prediction"] == "numeric":
            span = Source(ref, target, version, window_filter(prev_start, end))
            _, first = _profile(ctx, span, {"prediction": "numeric"}, {})
            if None in first:
                edges["prediction"] = numeric_edges(first[None].numeric["prediction"])
    base_has_prediction = "prediction" in base_schema.names and predicted
    base_kinds_cmp = {
        **kinds,
        **({"prediction": all_kinds["prediction"]} if base_has_prediction else {}),
    }
    # Pass 2: the baseline's counts below those edges (numeric columns only).
    numeric_only = {c: k for c, k in base_kinds_cmp.items() if k == "numeric"}
    raw_profiles: list[tuple[str, pa.Table]] = []
    base_prof: Profile = base_first.get(None, Profile())
    if numeric_only:
        base_raw2, base_second = _profile(
            ctx, base.source, numeric_only, edges, categorical=False, top_k=top_k
        )
        second = base_second.get(None, Profile())
        base_prof.numeric.update(second.numeric)
        numeric_names = pa.array(list(numeric_only), pa.string())
        kept = pc.invert(pc.is_in(base_raw.column("column"), numeric_names))
        raw_profiles.append(("baseline", base_raw.filter(kept)))
        raw_profiles.append(
            ("baseline", base_raw2.filter(pc.not_equal(base_raw2.column("column"), "")))
        )
    else:
        raw_profiles.append(("baseline", base_raw))
    cur_raw, cur = _profile(ctx, current, all_kinds, edges, top_k=top_k)
    raw_profiles.append(("current", cur_raw))
    cur_prof = cur.get(None, Profile())
    rows = {"baseline": int(base_prof.rows), "current": int(cur_prof.rows)}
    findings += drift_findings(
        base_prof, cur_prof, base_kinds_cmp, edges, reference="baseline", kind_of=kind_of
    )
    findings += quality_findings(base_prof, cur_prof, kinds)
    profiles: dict[str, dict[str | None, Profile]] = {"baseline": {None: base_prof}, "current": cur}
    if previous is not None:
        prev_raw, prev = _profile(ctx, previous, all_kinds, edges, top_k=top_k)
        raw_profiles.append(("previous", prev_raw))
        profiles["previous"] = prev
        prev_prof = prev.get(None, Profile())
        rows["previous"] = int(prev_prof.rows)
        if prev_prof.rows > 0:
            findings += drift_findings(
                prev_prof, cur_prof, all_kinds, edges, reference="previous", kind_of=kind_of
            )
    if slice is not None:
        slice_raw, slices = _profile(ctx, current, all_kinds, edges, group_by=slice, top_k=top_k)
        raw_profiles.append(("current", slice_raw))
        base_slices: dict[str | None, Profile] = {}
        if slice in base_schema.names:
            b_raw, base_slices = _profile(
                ctx, base.source, base_kinds_cmp, edges, group_by=slice, top_k=top_k
            )
            raw_profiles.append(("baseline", b_raw))
        for value, prof in sorted(slices.items(), key=lambda kv: str(kv[0])):
            label = f"{slice}={value}"
            ref_prof = base_slices.get(value, base_prof)
            findings += drift_findings(
                ref_prof,
                prof,
                base_kinds_cmp,
                edges,
                reference="baseline",
                kind_of=kind_of,
                slice=label,
            )
            findings += quality_findings(ref_prof, prof, kinds, slice=label)
        profiles["slices"] = slices
    routes: list[RouteStats] = []
    if inference:
        ops_source = Source(ref, target, version, time_filter(start, end))
        ops_raw, ops = _profile(
            ctx,
            ops_source,
            {"latency_ms": "numeric", "status": "categorical"},
            {"latency_ms": LATENCY_EDGES},
            group_by="route",
        )
        raw_profiles.append(("ops", ops_raw))
        routes = route_stats(ops)
    run_time = datetime.now(UTC)
    run_id = uuid.uuid4().hex
    result = MonitorResult(
        name=name,
        run_id=run_id,
        run_time=run_time,
        source=target,
        baseline={**base.to_dict(), "rows": rows["baseline"]},
        window_start=start,
        window_end=end,
        rows=rows,
        findings=findings,
        routes=routes,
        profiles=profiles,
        edges=edges,
        kinds=all_kinds,
    )
    if labels is not None and join_key is not None:
        from lakeloom.monitoring.performance import labelled_performance

        result.performance = labelled_performance(
            ctx,
            target,
            labels,
            join_key,
            label_column=label_column,
            window=width,
            end=end,
            served=inference,
            time_column=time_col,
        )
    if estimate_performance and predicted:
        from lakeloom.monitoring.performance import estimated_performance

        estimate = estimated_performance(cur.get(None, Profile()), edges.get("prediction", ()))
        if estimate is not None:
            result.performance.append(estimate)
    run = run_row(run_id, run_time, name, target, start, end)
    result.tables = write_results(
        ctx.tables, name, run=run, profiles=raw_profiles, findings=findings
    )
    if report is not None:
        from lakeloom.monitoring.report import write_report

        result.report = str(write_report(result, ctx, Path(report)))
    if webhook is not None:
        from lakeloom.monitoring.webhook import post_summary

        result.webhook_status = post_summary(webhook, result.summary())
    return result
