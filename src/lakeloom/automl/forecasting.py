"""``AutoMLForecaster``: FLAML's forecasting search, judged by rolling-origin backtests.

>>> f = AutoMLForecaster(time_column="month", target_column="co2", horizon=12,
...                      frequency="MS", time_limit_minutes=2)            # doctest: +SKIP
>>> f.fit(df).forecast_                                                  # doctest: +SKIP

Per series: FLAML searches forecasting models (gradient boosting and forests with lags,
ARIMA/SARIMAX when statsmodels is installed, Prophet when installed) on the series' seasonal
differences, using only the data before the backtest windows. Then every candidate -- the
best FLAML config, the baselines (last value, seasonal naive, drift) and the average of the
two best -- is refit at ``n_backtests`` origins and scored on the ``horizon`` steps after
each. The lowest mean error wins, so the winner is never worse than a baseline on the
backtest. It is refit on the whole series and forecasts the horizon.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lakeloom.automl.backtest import Found, backtest
from lakeloom.automl.base import AutoMLBase
from lakeloom.automl.data import AutoMLContext, _training_data, label_of, tracking_of
from lakeloom.automl.fit_logging import warm_imports
from lakeloom.automl.forecast_models import ForecastModel, SeriesForecaster
from lakeloom.automl.forecast_tracking import log_forecast_fit
from lakeloom.automl.scoring import Metric
from lakeloom.automl.search import (
    _ALIASES,
    FINISH_RESERVE_S,
    Budget,
    Trial,
    TrialLogTail,
    new_automl,
)
from lakeloom.automl.threads import effective_n_jobs
from lakeloom.automl.tracking import AutoMLRun
from lakeloom.errors import AutoMLError, InvalidArgument, SchemaMismatch
from lakeloom.models.labels import check_label

__all__ = ["AutoMLForecaster", "season_length_of", "ts_starting_points"]

_SEASONS = {
    "MS": 12,
    "ME": 12,
    "M": 12,
    "QS": 4,
    "QE": 4,
    "Q": 4,
    "W": 52,
    "D": 7,
    "B": 5,
    "h": 24,
    "H": 24,
}
_METRICS = {
    "mae": lambda a, f: float(np.mean(np.abs(a - f))),
    "rmse": lambda a, f: float(np.sqrt(np.mean((a - f) ** 2))),
    "mape": lambda a, f: float(np.mean(np.abs((a - f) / np.where(a == 0, np.nan, a)))),
}
_DEFAULT_TS_LEARNERS = ("lgbm", "xgboost", "rf", "extra_tree")


def season_length_of(frequency: str) -> int:
    """The seasonal period of a pandas frequency (``MS`` -> 12, ``D`` -> 7...; else 1)."""
    base = "".join(ch for ch in frequency if not ch.isdigit()).split("-")[0]
    return _SEASONS.get(base, _SEASONS.get(base.upper(), 1))


#: FLAML's forecasting learners lakeloom accepts (``prophet`` when installed).
TS_LEARNERS = (
    "lgbm",
    "xgboost",
    "xgb_limitdepth",
    "rf",
    "extra_tree",
    "arima",
    "sarimax",
    "holt-winters",
    "prophet",
)


def _ts_learners(models: list[str] | None) -> list[str]:
    import importlib.util

    if models:
        names = [_ALIASES.get(m, m) for m in models]
        unknown = [n for n in names if n not in TS_LEARNERS]
        if unknown:
            raise InvalidArgument(
                f"unknown forecasting model(s) {', '.join(unknown)}; use {', '.join(TS_LEARNERS)}"
            )
        needs = {"arima": "statsmodels", "sarimax": "statsmodels", "holt-winters": "statsmodels"}
        needs["prophet"] = "prophet"
        missing = [n for n in names if n in needs and importlib.util.find_spec(needs[n]) is None]
        if missing:
            raise InvalidArgument(f"model(s) {', '.join(missing)} need packages not installed")
        return names
    names = list(_DEFAULT_TS_LEARNERS)
    if importlib.util.find_spec("statsmodels") is not None:
        names += ["arima", "sarimax"]
    if importlib.util.find_spec("prophet") is not None:
        names.append("prophet")
    return names


def ts_starting_points(learners: list[str], lag: int) -> dict[str, dict[str, Any]]:
    """Cheap first configs for the statistical models, on already differenced data.

    FLAML's own first ARIMA and SARIMAX are large (p = q = 12, seasonal orders 3 at s = 12
    on monthly data: 20 s and more per fit here); the series is already differenced at the
    seasonal lag, so small orders without further differencing are the natural start, and
    the search grows them if they help.
    """
    points: dict[str, dict[str, Any]] = {}
    if "arima" in learners:
        points["arima"] = {"p": 2, "d": 0, "q": 1}
    if "sarimax" in learners:
        points["sarimax"] = {"p": 1, "d": 0, "q": 1, "P": 1, "D": 0, "Q": 1, "s": max(lag, 1)}
    return points


class AutoMLForecaster(AutoMLBase):
    """AutoML for time series; see the module docstring."""

    def __init__(
        self,
        time_column: str | None = None,
        target_column: str | None = None,
        horizon: int = 12,
        frequency: str | None = None,
        series_id_columns: list[str] | None = None,
        experiment_name: str = "automl_forecast",
        label: str | None = None,
        time_limit_minutes: float | None = 1.0,
        n_trials: int | None = None,
        metric: str = "mae",
        models: list[str] | None = None,
        seed: int = 0,
        n_jobs: int = -1,
        n_backtests: int = 3,
        season_length: int | None = None,
        context: AutoMLContext | None = None,
    ) -> None:
        self.time_column = time_column
        self.target_column = target_column
        self.horizon = horizon
        self.frequency = frequency
        self.series_id_columns = series_id_columns
        self.experiment_name = experiment_name
        self.label = label
        self.time_limit_minutes = time_limit_minutes
        self.n_trials = n_trials
        self.metric = metric
        self.models = models
        self.seed = seed
        self.n_jobs = n_jobs
        self.n_backtests = n_backtests
        self.season_length = season_length
        self.context = context

    # -- data ------------------------------------------------------------------------------
    def _check(self) -> tuple[str, list[str], Any]:
        if not self.time_column:
            raise InvalidArgument("time_column is required (the column of timestamps)")
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise InvalidArgument(f"horizon must be a positive integer, got {self.horizon!r}")
        if not isinstance(self.n_backtests, int) or self.n_backtests < 1:
            raise InvalidArgument(f"n_backtests must be at least 1, got {self.n_backtests!r}")
        if self.metric not in _METRICS:
            raise InvalidArgument(f"metric must be one of {', '.join(_METRICS)}")
        ids = list(self.series_id_columns or [])
        return self.time_column, ids, _METRICS[self.metric]

    def _series(
        self, df: pd.DataFrame, label: str, ids: list[str]
    ) -> dict[tuple[Any, ...], pd.Series]:
        tcol = str(self.time_column)
        missing = [c for c in [tcol, *ids] if c not in df.columns]
        if missing:
            raise SchemaMismatch(f"column(s) {', '.join(map(repr, missing))} not in the data")
        check_label(df, label, "the data")
        if not pd.api.types.is_numeric_dtype(df[label]):
            raise InvalidArgument(f"the target {label!r} must be numeric, it is {df[label].dtype}")
        frame = df.assign(**{tcol: pd.to_datetime(df[tcol])}).dropna(subset=[tcol])
        groups = frame.groupby(ids, sort=True) if ids else [((), frame)]
        out: dict[tuple[Any, ...], pd.Series] = {}
        for key, part in groups:
            key = key if isinstance(key, tuple) else (key,)
            s = part.set_index(tcol)[label].sort_index()
            if s.index.has_duplicates:
                raise AutoMLError(
                    f"series {key or 'the series'} has repeated timestamps "
                    f"(e.g. {s.index[s.index.duplicated()][0]}); aggregate first"
                )
            out[tuple(key)] = s.astype(float)
        return out

    def _regular(
        self, series: dict[tuple[Any, ...], pd.Series]
    ) -> tuple[str, dict[Any, pd.Series]]:
        frequency = self.frequency
        if frequency is None:
            first = next(iter(series.values()))
            frequency = pd.infer_freq(pd.DatetimeIndex(first.index)) if len(first) >= 3 else None
            if frequency is None:
                raise InvalidArgument(
                    "cannot infer the series' frequency from its timestamps; pass frequency= "
                    "('MS' monthly, 'D' daily, 'h' hourly...)"
                )
        regular: dict[Any, pd.Series] = {}
        for key, s in series.items():
            full = s.asfreq(frequency)
            gaps = int(full.isna().sum())
            if gaps:
                warnings.warn(
                    f"series {key or ''} has {gaps} missing step(s) at frequency "
                    f"{frequency}; filled by interpolation",
                    UserWarning,
                    stacklevel=4,
                )
                full = full.interpolate(limit_direction="both")
            regular[key] = full
        return str(frequency), regular

    # -- fit -------------------------------------------------------------------------------
    def fit(self, data: Any) -> AutoMLForecaster:
        """Search, backtest, refit the winners and forecast; returns ``self``."""
        limit = self._limit_seconds()
        self._check_trials()
        budget = Budget(limit)
        tcol, ids, score = self._check()
        _ts_learners(self.models)  # refuse unknown names before anything is written
        self.n_jobs_ = effective_n_jobs(self.n_jobs)
        label = label_of(self.target_column, self.label, data)
        with budget.phase("prepare"):
            warm_imports()
            source = _training_data(data, self.context)
            frequency, series = self._regular(self._series(source.load_df(), label, ids))
            season = self.season_length or season_length_of(frequency)
            need = self.horizon * self.n_backtests + max(2 * season, 2 * self.horizon) + 1
            short = {k: len(s) for k, s in series.items() if len(s) < need}
            if short:
                key, n = next(iter(short.items()))
                raise AutoMLError(
                    f"series {key or ''} has {n} points; horizon {self.horizon} with "
                    f"{self.n_backtests} backtests and season {season} needs at least {need}"
                )
        with budget.phase("tracking"):
            run = self._start_run(source, label, frequency, season, len(series), limit)
        self._tracked(
            run,
            budget,
            lambda: self._fit_all(run, budget, series, frequency, season, score, label, tcol, ids),
        )
        return self

    def _start_run(
        self, source: Any, label: str, frequency: str, season: int, n_series: int, limit: Any
    ) -> AutoMLRun:
        ids = list(self.series_id_columns or [])
        return AutoMLRun.start(
            tracking_of(self.context),
            self.experiment_name,
            run_name="automl-forecast",
            params={
                "task": "forecast",
                "label": label,
                "time_column": self.time_column,
                "series_id_columns": ",".join(ids),
                "horizon": self.horizon,
                "frequency": frequency,
                "season_length": season,
                "metric": self.metric,
                "time_limit_seconds": limit,
                "n_trials": self.n_trials,
                "n_backtests": self.n_backtests,
                "series": n_series,
                "seed": self.seed,
                "n_jobs": self.n_jobs_,
            },
            tags=source.lineage.tags(),
        )

    def _fit_all(
        self,
        run: AutoMLRun,
        budget: Budget,
        series: dict[Any, pd.Series],
        frequency: str,
        season: int,
        score: Any,
        label: str,
        tcol: str,
        ids: list[str],
    ) -> None:
        search_total = budget.search_seconds(FINISH_RESERVE_S)
        # The search gets half of what the tabular search would; backtests need the rest.
        per_series = None if search_total is None else search_total * 0.5 / len(series)
        boards: list[pd.DataFrame] = []
        winners: dict[Any, SeriesForecaster] = {}
        trials: list[Trial] = []
        with tempfile.TemporaryDirectory(prefix="lakeloom-forecast-") as tmp:
            for i, (key, y) in enumerate(series.items()):
                with budget.phase("search"):
                    found = self._search(y, key, i, season, per_series, Path(tmp), run, trials)
                with budget.phase("backtest"):
                    board, winner = backtest(
                        y,
                        key,
                        found,
                        horizon=self.horizon,
                        n_backtests=self.n_backtests,
                        season=season,
                        frequency=frequency,
                        score=score,
                        budget=budget,
                        seed=self.seed,
                        n_jobs=self.n_jobs_,
                    )
                boards.append(board)
                winners[key] = winner
            with budget.phase("refit"):
                for key, model in winners.items():
                    model.fit(series[key])
            self.best_model_ = ForecastModel(winners, tcol, label, ids, self.horizon, frequency)
            self.model_ = self.best_model_
            self.forecast_ = self.best_model_.forecast_frame()
            self.backtest_ = pd.concat(boards, ignore_index=True)
            self.trials_ = trials
            self.best_models_ = {k: m.name for k, m in winners.items()}
            wins = self.backtest_[self.backtest_["winner"]]
            self.best_score_ = float(wins["score"].mean())
            self.best_model_name_ = (
                next(iter(self.best_models_.values())) if len(winners) == 1 else "per series"
            )
            self.label_, self.frequency_, self.season_length_ = label, frequency, season
            with budget.phase("logging"):
                self.best_model_uri_ = log_forecast_fit(self, run, Path(tmp), series)

    def _search(
        self,
        y: pd.Series,
        key: Any,
        index: int,
        season: int,
        seconds: float | None,
        tmp: Path,
        run: AutoMLRun,
        trials: list[Trial],
    ) -> Found | None:
        """FLAML on the differences of the data before the backtests: (learner, config, lag)."""

        if seconds is not None and seconds < 1.0:
            return None
        lag = season if season > 1 and len(y) > 3 * season else 1
        window = y.iloc[: len(y) - self.horizon * self.n_backtests]
        diffs = window.diff(lag).dropna()
        frame = pd.DataFrame({"ds": diffs.index, "y": diffs.to_numpy()})
        log = tmp / f"series{index}.jsonl"
        learners = _ts_learners(self.models)
        found: list[Trial] = []

        def on_trial(t: Trial) -> None:
            found.append(t)
            run.log_trial(t, Metric(self.metric, False, lambda _y, _p: 0.0))

        tail = TrialLogTail(log, on_trial)
        tail.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                new_automl().fit(
                    dataframe=frame,
                    label="y",
                    task="ts_forecast",
                    period=self.horizon,
                    metric=self.metric if self.metric != "rmse" else "rmse",
                    estimator_list=learners,
                    starting_points=ts_starting_points(learners, lag),
                    time_budget=-1 if seconds is None else seconds,
                    max_iter=self.n_trials,
                    eval_method="holdout",
                    log_file_name=str(log),
                    log_type="all",
                    retrain_full=False,
                    mlflow_logging=False,
                    verbose=0,
                    seed=self.seed,
                    n_jobs=self.n_jobs_,
                )
        except (ValueError, AssertionError, KeyError) as exc:
            warnings.warn(
                f"FLAML could not search series {key or ''}: {exc}; only the baselines compete",
                UserWarning,
                stacklevel=4,
            )
        finally:
            tail.finish()
        trials.extend(found)
        if not found:
            return None
        best = min(found, key=lambda t: t.loss)
        return Found(best.learner, best.config, lag, best.train_time)

    # -- results ---------------------------------------------------------------------------
    def predict(self, data: Any = None) -> pd.DataFrame:
        """Forecasts for the horizon: all series, or those (and timestamps) in ``data``."""
        model = self._fitted()
        frame = pd.DataFrame()
        if data is not None:
            from lakeloom.models.data import to_pandas

            frame = to_pandas(data)
        return model.forecast_for(frame)

    @property
    def best_model(self) -> ForecastModel:
        """The fitted forecasters as a pyfunc-compatible model."""
        model: ForecastModel = self._fitted()
        return model
