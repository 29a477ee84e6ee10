"""Rolling-origin backtests: every forecasting candidate scored on the same windows.

The candidates are the baselines (last value, drift, seasonal naive, seasonal naive with
drift), FLAML's best config
(on differences) and the average of the two best; the lowest mean error wins, so the winner
is never worse than a baseline on the backtest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lakeloom.automl.forecast_models import (
    Average,
    Drift,
    FlamlDifferences,
    Naive,
    SeasonalDrift,
    SeasonalNaive,
    SeriesForecaster,
)
from lakeloom.automl.search import FINISH_RESERVE_S, Budget

__all__ = ["Found", "backtest"]


@dataclass(frozen=True)
class Found:
    """FLAML's best forecasting config for a series, and what its trial cost."""

    learner: str
    config: dict[str, Any]
    #: The differencing lag the search modelled (the season, or 1).
    lag: int
    #: Seconds the trial took: the first estimate of one refit.
    seconds: float


def backtest(
    y: pd.Series,
    key: tuple[Any, ...],
    found: Found | None,
    *,
    horizon: int,
    n_backtests: int,
    season: int,
    frequency: str,
    score: Callable[[np.ndarray, np.ndarray], float],
    budget: Budget,
    seed: int,
    n_jobs: int,
) -> tuple[pd.DataFrame, SeriesForecaster]:
    """Score every candidate at ``n_backtests`` origins; the board and the (unfitted) winner.

    ``found`` is FLAML's best config, or None. The FLAML candidate runs only while the time
    left pays for its remaining origins and the final refit (each costs about what its
    trial did, then what an origin did); baselines always run.
    """
    h, k_max = horizon, n_backtests

    def make(name: str) -> SeriesForecaster:
        if name == "last_value":
            return Naive()
        if name == "seasonal_naive":
            return SeasonalNaive(season)
        if name == "seasonal_drift":
            return SeasonalDrift(season)
        if name == "drift":
            return Drift()
        if found is None or name != f"flaml:{found.learner}":
            raise ValueError(f"unknown forecasting candidate {name!r}")
        return FlamlDifferences(found.learner, found.config, found.lag, h, frequency, seed, n_jobs)

    seasonal = ["seasonal_naive", "seasonal_drift"] if season > 1 else []
    names = ["last_value", "drift", *seasonal]
    if found is not None:
        names.append(f"flaml:{found.learner}")
    results: dict[str, list[np.ndarray]] = {}
    cost = found.seconds if found is not None else 0.0
    for name in names:
        forecasts = []
        for k in range(k_max, 0, -1):
            # k origins left, then the refit on the whole series if it wins.
            if name.startswith("flaml") and budget.remaining() - FINISH_RESERVE_S < cost * (k + 1):
                break  # no time to backtest the model: the baselines decide
            began = time.monotonic()
            model = make(name).fit(y.iloc[: len(y) - h * k])
            forecasts.append(model.forecast(h))
            cost = max(cost, time.monotonic() - began) if name.startswith("flaml") else cost
        if len(forecasts) == k_max:
            results[name] = forecasts
    actual = [y.iloc[len(y) - h * k : len(y) - h * k + h].to_numpy() for k in range(k_max, 0, -1)]
    scores = {
        n: [score(a, f) for a, f in zip(actual, fs, strict=True)] for n, fs in results.items()
    }
    ranked = sorted(scores, key=lambda n: np.mean(scores[n]))
    if len(ranked) >= 2:
        top = ranked[:2]
        avg = [np.mean([results[t][i] for t in top], axis=0) for i in range(k_max)]
        scores[f"average({top[0]}+{top[1]})"] = [
            score(a, f) for a, f in zip(actual, avg, strict=True)
        ]
    best = min(scores, key=lambda n: (np.mean(scores[n]), n))
    rows = [
        {
            "series": "/".join(map(str, key)) or "series",
            "model": n,
            "score": float(np.mean(v)),
            **{f"origin_{i + 1}": s for i, s in enumerate(v)},
            "winner": n == best,
        }
        for n, v in scores.items()
    ]
    board = pd.DataFrame(rows).sort_values("score", ignore_index=True)
    if best.startswith("average("):
        parts = best[len("average(") : -1].split("+")
        return board, Average([make(p) for p in parts])
    return board, make(best)
