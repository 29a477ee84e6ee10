"""Model quality once labels arrive, and an estimate before they do.

Delayed labels (``--labels raw.churn_labels --join-key customer_id``) are joined to the
inference table on the key's typed input column (the inference log writes one per input
column of the request). A key with several label rows counts once, with its largest label.
The metrics are SQL aggregates of the engine, per window and per model version:

* binary classification (a boolean or integer label; the prediction a class 0/1 or a
  probability, positive at ``>= 0.5``): accuracy, precision, recall, F1, positive rate;
* regression (a floating-point label): MAE, RMSE and bias (mean of prediction - label).

Before labels arrive, ``estimate_performance`` reports the expected accuracy of a
calibrated binary classifier from its confidence: the mean of ``max(p, 1 - p)`` over the
window's predicted probabilities (confidence-based performance estimation, CBPE, for
accuracy), read off the prediction's histogram (within half a bin: 0.005 on [0, 1]).
It needs probabilities: an endpoint that returns classes gives no estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from lakeloom.engines.delta_log import arrow_schema, open_delta
from lakeloom.errors import InvalidArgument
from lakeloom.monitoring.context import MonitorContext
from lakeloom.monitoring.profiles import Profile
from lakeloom.monitoring.sql_text import quote, timestamp

__all__ = ["WINDOWS", "estimated_performance", "label_column_of", "labelled_performance"]

#: Windows reported back from the newest (with a window width).
WINDOWS = 7


def _q(ctx: MonitorContext, name: str) -> str:
    return quote(name, ctx.engine.name)


def label_column_of(schema: pa.Schema, join_key: str, label_column: str | None) -> str:
    """The label column of a labels table: ``label_column``, or its one value column."""
    if join_key not in schema.names:
        raise InvalidArgument(
            f"the labels have no join key column {join_key!r}; their columns: "
            f"{', '.join(schema.names)}"
        )
    if label_column is not None:
        if label_column not in schema.names:
            raise InvalidArgument(
                f"the labels have no column {label_column!r}; their columns: "
                f"{', '.join(schema.names)}"
            )
        return label_column
    candidates = [
        f.name
        for f in schema
        if f.name != join_key and not (pa.types.is_timestamp(f.type) or pa.types.is_date(f.type))
    ]
    if len(candidates) != 1:
        raise InvalidArgument(
            f"cannot tell the label column among {', '.join(candidates) or 'no column'}; "
            "pass --label-column"
        )
    return candidates[0]


def _is_regression(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_decimal(t)


def labelled_performance(
    ctx: MonitorContext,
    target: str,
    labels: str,
    join_key: str,
    *,
    label_column: str | None = None,
    window: timedelta | None = None,
    end: datetime | None = None,
    served: bool = False,
    time_column: str | None = None,
) -> list[dict[str, Any]]:
    """Quality metrics of the logged predictions against the delayed labels.

    One entry per window (the last :data:`WINDOWS` with a window width, else the whole
    table) and model version that has labelled rows.
    """
    target_schema = arrow_schema(open_delta(ctx.tables.resolve(target)))
    if join_key not in target_schema.names:
        raise InvalidArgument(
            f"{target} has no column {join_key!r} to join the labels on (the endpoint's "
            "requests must carry it as an input column)"
        )
    if "prediction" not in target_schema.names:
        raise InvalidArgument(f"{target} has no 'prediction' column to compare with labels")
    label_schema = arrow_schema(open_delta(ctx.tables.resolve(labels)))
    label = label_column_of(label_schema, join_key, label_column)
    regression = _is_regression(label_schema.field(label).type)
    k, y = _q(ctx, join_key), _q(ctx, label)
    p = "CAST(i.prediction AS DOUBLE)"
    t = "CAST(l.y AS DOUBLE)"
    if regression:
        metrics = (
            f"AVG(ABS({p} - {t})) AS mae, SQRT(AVG(({p} - {t}) * ({p} - {t}))) AS rmse, "
            f"AVG({p} - {t}) AS bias"
        )
    else:
        pos = f"CASE WHEN {p} >= 0.5 THEN 1 ELSE 0 END"
        metrics = (
            f"SUM(CASE WHEN {pos} = {t} THEN 1 ELSE 0 END) AS correct, "
            f"SUM(CASE WHEN {pos} = 1 AND {t} = 1 THEN 1 ELSE 0 END) AS tp, "
            f"SUM(CASE WHEN {pos} = 1 AND {t} = 0 THEN 1 ELSE 0 END) AS fp, "
            f"SUM(CASE WHEN {pos} = 0 AND {t} = 1 THEN 1 ELSE 0 END) AS fn"
        )
    windows: list[tuple[datetime | None, datetime | None]] = [(None, None)]
    if window is not None and end is not None and time_column is not None:
        windows = [(end - (i + 1) * window, end - i * window) for i in range(WINDOWS)]
    out: list[dict[str, Any]] = []
    for lo, hi in windows:
        conditions = ["i.status = 200", "i.route <> 'shadow'"] if served else []
        conditions.append(f"{p} IS NOT NULL")
        if lo is not None and hi is not None and time_column is not None:
            q = "i." + _q(ctx, time_column)
            conditions.append(f"{q} > {timestamp(lo)} AND {q} <= {timestamp(hi)}")
        query = (
            f"SELECT i.model_version AS model_version, COUNT(*) AS n, {metrics} "
            f"FROM {target} i JOIN (SELECT {k} AS k, MAX({y}) AS y FROM {labels} "
            f"WHERE {y} IS NOT NULL GROUP BY {k}) l ON i.{k} = l.k "
            f"WHERE {' AND '.join(conditions)} GROUP BY i.model_version"
        )
        table = ctx.engine.to_arrow(ctx.tables.sql(query))
        for row in sorted(table.to_pylist(), key=lambda r: r["model_version"] or 0):
            n = int(row["n"])
            entry: dict[str, Any] = {
                "window_start": lo.isoformat() if lo else None,
                "window_end": hi.isoformat() if hi else None,
                "model_version": row["model_version"],
                "rows": n,
                "task": "regression" if regression else "classification",
            }
            if regression:
                entry.update(mae=row["mae"], rmse=row["rmse"], bias=row["bias"])
            else:
                entry.update(_classification(n, row))
            out.append(entry)
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _classification(n: int, row: dict[str, Any]) -> dict[str, Any]:
    tp, fp, fn = float(row["tp"] or 0), float(row["fp"] or 0), float(row["fn"] or 0)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall > 0
        else None
    )
    return {
        "accuracy": _ratio(float(row["correct"] or 0), n),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "positive_rate": _ratio(tp + fp, n),
    }


def estimated_performance(current: Profile, edges: Sequence[float]) -> dict[str, Any] | None:
    """Expected accuracy from the predicted probabilities' confidence (None: no probabilities)."""
    pred = current.numeric.get("prediction")
    if pred is None or pred.count <= 0 or pred.min is None or pred.max is None:
        return None
    if pred.min < 0 or pred.max > 1 or not edges:
        return None
    xs = [pred.min, *edges, pred.max]
    cum = [0.0, *pred.below, pred.count]
    # Classes 0/1, not probabilities: nothing between the first and the last bin.
    between = pred.below[-2] - pred.below[1] if len(pred.below) >= 3 else 0.0
    if between <= 0 and pred.min == 0 and pred.max <= 1:
        return None
    total = 0.0
    for i in range(1, len(cum)):
        n = cum[i] - cum[i - 1]
        if n <= 0:
            continue
        lo, hi = max(xs[i - 1], pred.min), min(xs[i], pred.max)
        mid = (lo + hi) / 2 if math.isfinite(lo + hi) else lo
        total += n * max(mid, 1 - mid)
    confidence = total / pred.count
    return {
        "window_start": None,
        "window_end": None,
        "model_version": None,
        "rows": int(pred.count),
        "task": "classification",
        "method": "confidence",
        "estimated_accuracy": confidence,
    }
