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
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from lakeloom.automl.backtest import backtest
from lakeloom.automl.data import AutoMLContext, _training_data, label_of, tracking_of
from lakeloom.automl.fit_logging import warm_imports
from lakeloom.automl.forecast_models import ForecastModel, SeriesForecaster
from lakeloom.automl.forecast_tracking import log_forecast_fit
from lakeloom.automl.scoring import Metric
from lakeloom.automl.search import FINISH_RESERVE_S, Budget, Trial, TrialLogTail, new_automl
from lakeloom.automl.tracking import AutoMLRun
from lakeloom.errors import AutoMLError, InvalidArgument, SchemaMismatch
from lakeloom.models.labels import check_label

__all__ = ["AutoMLForecaster", "season_length_of"]

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


def _ts_learners(models: list[str] | None) -> list[str]:
    import importlib.util

    if models:
        return list(models)
    names = list(_DEFAULT_TS_LEARNERS)
    if importlib.util.find_spec("statsmodels") is not None:
        names += ["arima", "sarimax"]
    if importlib.util.find_spec("prophet") is not None:
        names.append("prophet")
    return names


class AutoMLForecaster(BaseEstimator):  # type: ignore[misc]
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

    def __sklearn_clone__(self) -> AutoMLForecaster:
        import copy

        params = self.get_params(deep=False)
        context = params.pop("context")
        return type(self)(**copy.deepcopy(params), context=context)

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
        limit = None if self.time_limit_minutes is None else float(self.time_limit_minutes) * 60
        if limit is None and self.n_trials is None:
            raise InvalidArgument("give time_limit_minutes, n_trials or both")
        budget = Budget(limit)
        tcol, ids, score = self._check()
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
        run = AutoMLRun.start(
            tracking_of(self.context),
            self.experiment_name,
            run_name="automl-forecast",
            params={
                "task": "forecast",
                "label": label,
                "time_column": tcol,
                "series_id_columns": ",".join(ids),
                "horizon": self.horizon,
                "frequency": frequency,
                "season_length": season,
                "metric": self.metric,
                "time_limit_seconds": limit,
                "n_trials": self.n_trials,
                "n_backtests": self.n_backtests,
                "series": len(series),
                "seed": self.seed,
            },
            tags=source.lineage.tags(),
        )
        try:
            self._fit_all(run, budget, series, frequency, season, score, label, tcol, ids)
        except BaseException as exc:
            run.end(
                "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED",
                str(exc).splitlines()[0] if str(exc) else None,
            )
            raise
        return self

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
                found = self._search(y, key, i, per_series, Path(tmp), run, trials)
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
                    n_jobs=self.n_jobs,
                )
                boards.append(board)
                winners[key] = winner
            with budget.phase("refit"):
                for key, model in winners.items():
                    model.fit(series[key])
            self.model_ = ForecastModel(winners, tcol, label, ids, self.horizon, frequency)
            self.forecast_ = self.model_.forecast_frame()
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
        self.best_run_id_ = run.run_id
        self.budget_ = budget.report()
        run.log_metrics(
            {"fit_seconds": self.budget_["total"], "overrun_seconds": self.budget_["overrun"]}
        )
        run.end("FINISHED")

    def _search(
        self,
        y: pd.Series,
        key: Any,
        index: int,
        seconds: float | None,
        tmp: Path,
        run: AutoMLRun,
        trials: list[Trial],
    ) -> tuple[str, dict[str, Any], int] | None:
        """FLAML on the differences of the data before the backtests: (learner, config, lag)."""

        if seconds is not None and seconds < 1.0:
            return None
        season = self.season_length or season_length_of(self.frequency or "")
        lag = season if season > 1 and len(y) > 3 * season else 1
        window = y.iloc[: len(y) - self.horizon * self.n_backtests]
        diffs = window.diff(lag).dropna()
        frame = pd.DataFrame({"ds": diffs.index, "y": diffs.to_numpy()})
        log = tmp / f"series{index}.jsonl"
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
                    estimator_list=_ts_learners(self.models),
                    time_budget=-1 if seconds is None else seconds,
                    max_iter=self.n_trials,
                    eval_method="holdout",
                    log_file_name=str(log),
                    log_type="all",
                    retrain_full=False,
                    mlflow_logging=False,
                    verbose=0,
                    seed=self.seed,
                    n_jobs=self.n_jobs,
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
        return best.learner, best.config, lag

    # -- results ---------------------------------------------------------------------------
    def _fitted(self) -> ForecastModel:
        model: ForecastModel | None = getattr(self, "model_", None)
        if model is None:
            raise NotFittedError("AutoMLForecaster is not fitted yet; call fit first")
        return model

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
        return self._fitted()

    @property
    def best_model_name(self) -> str:
        """The winning candidate (``per series`` when there are several series)."""
        self._fitted()
        return str(self.best_model_name_)

    @property
    def best_score(self) -> float:
        """Mean backtest error of the winners (lower is better)."""
        self._fitted()
        return float(self.best_score_)

    @property
    def best_run_id(self) -> str:
        """The parent MLflow run of the fit."""
        self._fitted()
        return str(self.best_run_id_)
