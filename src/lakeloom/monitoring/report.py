"""The HTML report of a monitoring run: one self-contained file (PNG plots inlined as base64).

It opens offline: no script, no stylesheet or font from elsewhere. It shows the verdict, the
most drifted columns, data-quality alarms and schema changes, routes (traffic, errors,
latency), labelled performance, each compared column's distribution in the baseline, the
previous and the current window, and each column's drift over the runs recorded in the
drift table.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lakeloom.monitoring.profiles import Profile
from lakeloom.monitoring.result_tables import drift_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lakeloom.monitoring.context import MonitorContext
    from lakeloom.monitoring.result import MonitorResult

__all__ = ["write_report"]

#: Columns drawn (most drifted first).
MAX_PLOTS = 12
_COLORS = {"baseline": "#4c72b0", "previous": "#999999", "current": "#dd8452"}
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;
color:#222;max-width:1100px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.25rem .6rem;
border-bottom:1px solid #eee;text-align:left}th{background:#f6f6f6}
.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plots figure{margin:0}
figcaption{font-size:.85rem;color:#555}
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig: Figure, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _numeric_plot(column: str, edges: tuple[float, ...], sides: dict[str, Profile]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 2.6))
    ax = fig.add_subplot()
    for side, prof in sides.items():
        p = prof.numeric.get(column)
        if p is None or p.count <= 0 or len(p.below) != len(edges):
            continue
        counts = np.diff(np.asarray(p.below, dtype=float)) / p.count
        if len(edges) < 3:  # a constant column: one bar at its value
            ax.bar([str(edges[0])], [float(counts.sum())], label=side, color=_COLORS.get(side))
            continue
        bounds = np.asarray(edges, dtype=float)
        if len(counts) >= 2:  # the last bin only holds the maximum: fold it into the one before
            counts = np.concatenate([counts[:-2], [counts[-2] + counts[-1]]])
            bounds = np.concatenate([bounds[:-2], bounds[-1:]])
        widths = np.diff(bounds)
        density = np.divide(counts, widths, out=np.zeros_like(counts), where=widths > 0)
        ax.stairs(density, bounds, label=side, color=_COLORS.get(side), linewidth=1.5)
    ax.set_title(column, fontsize=10)
    ax.set_ylabel("density", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return fig


def _categorical_plot(column: str, sides: dict[str, Profile]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 2.6))
    ax = fig.add_subplot()
    cats: dict[str, float] = {}
    for prof in sides.values():
        c = prof.categorical.get(column)
        if c is not None:
            for k, n in c.categories.items():
                cats[k] = cats.get(k, 0.0) + n
    keys = sorted(cats, key=lambda k: -cats[k])[:12]
    x = np.arange(len(keys))
    width = 0.8 / max(len(sides), 1)
    for i, (side, prof) in enumerate(sides.items()):
        c = prof.categorical.get(column)
        if c is None or c.count <= 0:
            continue
        shares = [c.categories.get(k, 0.0) / c.count for k in keys]
        ax.bar(x + i * width, shares, width, label=side, color=_COLORS.get(side))
    ax.set_xticks(x + width * (len(sides) - 1) / 2, keys, rotation=30, fontsize=7)
    ax.set_title(column, fontsize=10)
    ax.set_ylabel("share", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return fig


def _history_plot(ctx: MonitorContext, name: str, columns: list[str]) -> Figure | None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    table_name = drift_table(name)
    if not ctx.tables.exists(table_name) or not columns:
        return None
    data = ctx.engine.to_arrow(
        ctx.tables.read(
            table_name,
            columns=["run_time", "feature", "statistic", "p_value", "threshold"],
            filter="is_primary AND reference = 'baseline' AND slice IS NULL "
            "AND kind IN ('feature', 'prediction')",
        )
    ).to_pylist()
    fig = Figure(figsize=(8.6, 3.0))
    ax = fig.add_subplot()
    for column in columns[:6]:
        points = sorted((r["run_time"], _score(r)) for r in data if r["feature"] == column)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=column)
    ax.axhline(1.0, color="#b00020", linestyle="--", linewidth=1, label="threshold")
    ax.set_ylabel("statistic / threshold", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, ncols=2)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    return fig


def _score(row: dict[str, Any]) -> float:
    if row["p_value"] is not None:
        return min(float(row["threshold"]) / max(float(row["p_value"]), 1e-300), 50.0)
    threshold = float(row["threshold"] or 0)
    return min(float(row["statistic"]) / threshold, 50.0) if threshold else 0.0


def write_report(result: MonitorResult, ctx: MonitorContext, path: Path) -> Path:
    """Write ``result``'s HTML report to ``path``.

    A path that is a folder, or does not end in ``.html``, is a folder (created when
    missing) that gets ``monitor_<name>.html``.
    """
    if path.is_dir() or path.suffix.lower() not in (".html", ".htm"):
        path = path / f"monitor_{result.name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    verdict = (
        '<span class="bad">drift found</span>'
        if result.drift_found
        else '<span class="ok">no drift</span>'
    )
    window = (
        f"{result.window_start:%Y-%m-%d %H:%M} – {result.window_end:%Y-%m-%d %H:%M} UTC"
        if result.window_start and result.window_end
        else "the whole table"
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>lakeloom monitor {html.escape(result.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Monitor <code>{html.escape(result.name)}</code>: {verdict}</h1>",
        _table(
            ["", ""],
            [
                ["data", result.source],
                ["baseline", result.baseline.get("baseline")],
                ["window", window],
                [
                    "rows (baseline / current / previous)",
                    " / ".join(
                        str(result.rows.get(k, "–")) for k in ("baseline", "current", "previous")
                    ),
                ],
                ["run", f"{result.run_id} at {result.run_time:%Y-%m-%d %H:%M:%S} UTC"],
            ],
        ),
    ]
    ranked = result.most_drifted(10_000)
    parts.append("<h2>Drift against the baseline</h2>")
    parts.append(
        _table(
            ["column", "kind", "type", "method", "statistic", "p-value", "threshold", "drift"],
            [
                [
                    f.column,
                    f.kind,
                    f.column_type,
                    f.method,
                    f.statistic,
                    f.p_value,
                    f.threshold,
                    f.drifted,
                ]
                for f in ranked
                if f.reference == "baseline"
            ],
        )
    )
    previous = [
        f for f in result.findings if f.reference == "previous" and f.primary and f.slice is None
    ]
    if previous:
        parts.append("<h2>Drift against the previous window</h2>")
        previous.sort(key=lambda f: (not f.drifted, -f.score))
        parts.append(
            _table(
                ["column", "kind", "method", "statistic", "p-value", "threshold", "drift"],
                [
                    [f.column, f.kind, f.method, f.statistic, f.p_value, f.threshold, f.drifted]
                    for f in previous
                ],
            )
        )
    quality = [f for f in result.findings if f.kind in ("quality", "schema")]
    parts.append("<h2>Data quality and schema</h2>")
    parts.append(
        _table(
            ["column", "check", "value", "alarm above", "alarm", "slice", "detail"],
            [
                [f.column, f.method, f.statistic, f.threshold, f.drifted, f.slice, f.detail]
                for f in sorted(quality, key=lambda f: (not f.drifted, f.column))
            ],
        )
    )
    sliced = [
        f
        for f in result.findings
        if f.slice is not None and f.primary and f.kind != "quality" and f.drifted
    ]
    if sliced:
        parts.append("<h2>Drifted slices</h2>")
        parts.append(
            _table(
                ["slice", "column", "method", "statistic", "p-value"],
                [[f.slice, f.column, f.method, f.statistic, f.p_value] for f in sliced],
            )
        )
    if result.routes:
        parts.append("<h2>Routes</h2>")
        parts.append(
            _table(
                [
                    "route",
                    "rows",
                    "traffic share",
                    "errors",
                    "error rate",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                ],
                [
                    [
                        r.route,
                        r.rows,
                        r.share,
                        r.errors,
                        r.error_rate,
                        r.latency_p50_ms,
                        r.latency_p95_ms,
                        r.latency_p99_ms,
                    ]
                    for r in result.routes
                ],
            )
        )
    if result.performance:
        keys = sorted({k for p in result.performance for k in p})
        parts.append("<h2>Performance</h2>")
        parts.append(_table(keys, [[p.get(k) for k in keys] for p in result.performance]))
    history = _history_plot(ctx, result.name, [f.column for f in ranked])
    if history is not None:
        parts.append("<h2>Drift over time</h2>")
        parts.append(_img(history, "drift over time"))
    parts.append("<h2>Distributions</h2><div class='plots'>")
    sides: dict[str, Profile] = {
        side: result.profiles[side].get(None, Profile())
        for side in ("baseline", "previous", "current")
        if side in result.profiles
    }
    for f in ranked[:MAX_PLOTS]:
        kind = result.kinds.get(f.column)
        if kind == "numeric" and result.edges.get(f.column):
            fig = _numeric_plot(f.column, result.edges[f.column], sides)
        elif kind == "categorical":
            fig = _categorical_plot(f.column, sides)
        else:
            continue
        parts.append(
            f"<figure>{_img(fig, f.column)}<figcaption>{html.escape(f.method)} "
            f"{_fmt(f.statistic)}</figcaption></figure>"
        )
    parts.append("</div></body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
