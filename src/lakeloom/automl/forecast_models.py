"""Forecasters of one series: baselines, FLAML on differences, averages, and the pyfunc model.

Every forecaster has ``fit(y)`` on a regular series (a pandas Series with a DatetimeIndex) and
``forecast(h)`` for the ``h`` steps after it. The FLAML forecaster models the series' seasonal
(or first) differences, which removes trend and seasonality that tree models cannot
extrapolate, and rebuilds levels from the history.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Average",
    "Drift",
    "FlamlDifferences",
    "Naive",
    "SeasonalDrift",
    "SeasonalNaive",
    "SeriesForecaster",
    "future_index",
]


def future_index(index: pd.DatetimeIndex, frequency: str, h: int) -> pd.DatetimeIndex:
    """The ``h`` timestamps after the end of ``index``."""
    return pd.date_range(index[-1], periods=h + 1, freq=frequency)[1:]


class SeriesForecaster(ABC):
    """Base: ``fit(y)`` then ``forecast(h)``."""

    name = "base"

    def fit(self, y: pd.Series) -> SeriesForecaster:
        self.y_ = y.astype(float)
        return self

    @abstractmethod
    def forecast(self, h: int) -> np.ndarray:
        """The next ``h`` values after the series given to :meth:`fit`."""


class Naive(SeriesForecaster):
    """The last value, repeated."""

    name = "last_value"

    def forecast(self, h: int) -> np.ndarray:
        return np.full(h, float(self.y_.iloc[-1]))


class SeasonalNaive(SeriesForecaster):
    """The value one season earlier."""

    name = "seasonal_naive"

    def __init__(self, season: int) -> None:
        self.season = season

    def forecast(self, h: int) -> np.ndarray:
        last = self.y_.to_numpy()[-self.season :]
        return np.asarray([last[k % self.season] for k in range(h)], dtype=float)


class SeasonalDrift(SeriesForecaster):
    """Seasonal naive plus the recent average change from one season to the next.

    The textbook "seasonal naive with drift": for trending seasonal series (CO2) it removes
    the one-season lag of the trend that seasonal naive carries.
    """

    name = "seasonal_drift"

    def __init__(self, season: int) -> None:
        self.season = season

    def forecast(self, h: int) -> np.ndarray:
        y = self.y_.to_numpy()
        s = self.season
        # The last two seasons' changes (all of them on a short series).
        recent = y[-2 * s :] - y[-3 * s : -s] if len(y) >= 3 * s else y[s:] - y[:-s]
        step = float(np.mean(recent))
        last = y[-s:]
        return np.asarray([last[k % s] + (k // s + 1) * step for k in range(h)], dtype=float)


class Drift(SeriesForecaster):
    """The last value plus the series' average step (a random walk with drift)."""

    name = "drift"

    def forecast(self, h: int) -> np.ndarray:
        y = self.y_.to_numpy()
        slope = (y[-1] - y[0]) / max(len(y) - 1, 1)
        return y[-1] + slope * np.arange(1, h + 1)


class FlamlDifferences(SeriesForecaster):
    """A FLAML forecasting config fitted on the series' lag-``lag`` differences."""

    def __init__(
        self,
        learner: str,
        config: dict[str, Any],
        lag: int,
        horizon: int,
        frequency: str,
        seed: int,
        n_jobs: int,
    ) -> None:
        self.learner, self.config, self.lag, self.horizon = learner, config, lag, horizon
        self.frequency, self.seed, self.n_jobs = frequency, seed, n_jobs
        self.name = f"flaml:{learner}"

    def fit(self, y: pd.Series) -> FlamlDifferences:

        super().fit(y)
        diffs = self.y_.diff(self.lag).dropna()
        frame = pd.DataFrame({"ds": diffs.index, "y": diffs.to_numpy()})
        from lakeloom.automl.search import new_automl

        self.model_ = new_automl()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_.fit(
                dataframe=frame,
                label="y",
                task="ts_forecast",
                period=self.horizon,
                estimator_list=[self.learner],
                starting_points={self.learner: dict(self.config)},
                max_iter=1,
                eval_method="holdout",
                verbose=0,
                mlflow_logging=False,
                seed=self.seed,
                n_jobs=self.n_jobs,
            )
        logging.getLogger("flaml.automl.logger").setLevel(logging.WARNING)
        return self

    def forecast(self, h: int) -> np.ndarray:
        steps = future_index(pd.DatetimeIndex(self.y_.index), self.frequency, h)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            diffs = np.asarray(self.model_.predict(pd.DataFrame({"ds": steps})), dtype=float)
        history = list(self.y_.to_numpy())
        out = []
        for k in range(h):
            level = history[len(history) - self.lag] + diffs[k]
            history.append(level)
            out.append(level)
        return np.asarray(out)


class Average(SeriesForecaster):
    """The mean of other forecasters' forecasts."""

    def __init__(self, parts: Sequence[SeriesForecaster]) -> None:
        self.parts = list(parts)
        self.name = "average(" + "+".join(p.name for p in self.parts) + ")"

    def fit(self, y: pd.Series) -> Average:
        super().fit(y)
        for p in self.parts:
            p.fit(y)
        return self

    def forecast(self, h: int) -> np.ndarray:
        return np.mean([p.forecast(h) for p in self.parts], axis=0)


def _pyfunc_base() -> type:
    import mlflow.pyfunc

    base: type = mlflow.pyfunc.PythonModel
    return base


class ForecastModel(_pyfunc_base()):  # type: ignore[misc]
    """The fitted forecasters of every series as an MLflow pyfunc model.

    ``predict`` takes rows of series ids (when the model has them) and optionally the time
    column; it returns the forecast for each series' next ``horizon`` steps, or for the rows'
    timestamps when given.
    """

    def __init__(
        self,
        models: dict[tuple[Any, ...], SeriesForecaster],
        time_column: str,
        target_column: str,
        id_columns: Sequence[str],
        horizon: int,
        frequency: str,
    ) -> None:
        self.models = models
        self.time_column, self.target_column = time_column, target_column
        self.id_columns, self.horizon, self.frequency = list(id_columns), horizon, frequency

    def forecast_frame(self, keys: Sequence[tuple[Any, ...]] | None = None) -> pd.DataFrame:
        """Every (or the given) series' forecast for the horizon."""
        frames = []
        for key in keys if keys is not None else list(self.models):
            model = self.models[key]
            steps = future_index(pd.DatetimeIndex(model.y_.index), self.frequency, self.horizon)
            frame = pd.DataFrame(
                {self.time_column: steps, self.target_column: model.forecast(self.horizon)}
            )
            for col, value in zip(self.id_columns, key, strict=True):
                frame.insert(0, col, value)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict[str, str] | None = None
    ) -> pd.DataFrame:
        """Forecasts for the series (and timestamps) in ``model_input``."""
        return self.forecast_for(model_input)

    def forecast_for(self, model_input: pd.DataFrame | None) -> pd.DataFrame:
        """Forecasts for the series (and timestamps) in ``model_input`` (all when empty)."""
        if self.id_columns and model_input is not None and len(model_input):
            keys = list(
                dict.fromkeys(
                    tuple(row) for row in model_input[self.id_columns].itertuples(index=False)
                )
            )
            unknown = [k for k in keys if k not in self.models]
            if unknown:
                raise ValueError(f"no model for series {unknown[0]!r}")
        else:
            keys = None
        out = self.forecast_frame(keys)
        if model_input is not None and self.time_column in model_input.columns:
            wanted = model_input[[*self.id_columns, self.time_column]].copy()
            wanted[self.time_column] = pd.to_datetime(wanted[self.time_column])
            out = wanted.merge(out, on=[*self.id_columns, self.time_column], how="left")
        return out
