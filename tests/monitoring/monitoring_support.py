"""Monitoring test support: inference tables written by the real inference-log writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from lakeloom import Workspace
from lakeloom.deployment.config import InferenceTableConfig
from lakeloom.deployment.inference_log import InferenceLogger, LogEntry

#: Where the logged traffic ends (the monitors' windows end at the newest row).
END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TYPES = {"tenure": "long", "spend": "double", "plan": "string", "email_opt_in": "boolean"}


def customers(
    n: int, seed: int = 0, *, shift: float = 0.0, new_plan: float = 0.0, null_spend: float = 0.0
) -> pd.DataFrame:
    """Customer rows: tenure (long), spend (double), plan (string), email_opt_in (bool).

    ``shift`` moves spend's mean by that many standard deviations, ``new_plan`` gives that
    share of rows the plan "enterprise" (never in the baseline), ``null_spend`` nulls that
    share of spend.
    """
    rng = np.random.default_rng(seed)
    spend = rng.normal(60.0 + 20.0 * shift, 20.0, n).round(2)
    plan = rng.choice(["basic", "pro", "max"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if new_plan:
        plan[rng.random(n) < new_plan] = "enterprise"
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype="int64") + seed * 1_000_000,
            "tenure": rng.integers(1, 60, n).astype("int64"),
            "spend": spend,
            "plan": pd.Series(plan, dtype=object),
            "email_opt_in": rng.random(n) < 0.4,
        }
    )
    if null_spend:
        frame.loc[rng.random(n) < null_spend, "spend"] = np.nan
        frame["spend"] = frame["spend"].astype("Float64")
    return frame


def log_traffic(
    ws: Workspace,
    endpoint: str,
    frame: pd.DataFrame,
    *,
    start: datetime,
    span: timedelta,
    predictions: list[Any] | None = None,
    routes: list[str] | None = None,
    versions: dict[str, int] | None = None,
    latency_ms: float = 5.0,
    failures: int = 0,
    columns: tuple[str, ...] = ("customer_id", "tenure", "spend", "plan", "email_opt_in"),
) -> int:
    """Log each row of ``frame`` as one request, spread evenly over ``[start, start+span)``."""
    logger = InferenceLogger(
        ws.tables, f"lakeloom.inference_{endpoint}", endpoint, InferenceTableConfig()
    )
    types = tuple({"customer_id": "long", **TYPES}[c] for c in columns)
    n = len(frame)
    records = frame.loc[:, list(columns)].astype(object).where(frame.notna(), None)
    step = span / max(n, 1)
    for i, row in enumerate(records.itertuples(index=False, name=None)):
        route = routes[i] if routes else "champion"
        logger.log(
            LogEntry(
                request_id=f"r{i}",
                time=(start + i * step).timestamp(),
                route=route,
                model_name="churn_model",
                model_version=(versions or {}).get(route, 1),
                status=200,
                latency_ms=latency_ms + (i % 7),
                columns=columns,
                types=types,
                rows=[tuple(None if v is pd.NA else v for v in row)],
                predictions=[predictions[i] if predictions is not None else 0],
            )
        )
    for j in range(failures):
        logger.log(
            LogEntry(
                f"e{j}",
                (start + span * 0.5).timestamp(),
                "champion",
                "churn_model",
                1,
                500,
                2.0,
                error=b'{"error": "boom"}',
            )
        )
    written = logger.flush()
    assert logger.write_errors == 0, logger.last_error
    return written
