"""AutoMLForecaster: FLAML's forecasting search judged by rolling-origin backtests."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from lakeloom import Workspace
from lakeloom.automl import AutoMLForecaster
from lakeloom.automl.backtest import backtest
from lakeloom.automl.forecast_models import SeasonalDrift
from lakeloom.automl.forecasting import season_length_of, ts_starting_points
from lakeloom.automl.search import Budget
from lakeloom.errors import AutoMLError, InvalidArgument

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:flaml")

BASELINES = {"last_value", "seasonal_naive", "seasonal_drift", "drift"}


def test_the_winner_is_never_worse_than_the_baselines_on_the_backtest(
    workspace: Workspace, monthly: pd.DataFrame
) -> None:
    f = AutoMLForecaster(
        time_column="month",
        target_column="co2",
        horizon=6,
        frequency="MS",
        n_backtests=2,
        time_limit_minutes=None,
        n_trials=2,
        models=["lgbm"],
        context=workspace,
    )
    f.fit(monthly.iloc[:-6])
    board = f.backtest_
    assert BASELINES <= set(board["model"])
    assert "flaml:lgbm" in set(board["model"])
    winner = board[board["winner"]].iloc[0]
    assert winner["score"] <= board[board["model"].isin(BASELINES)]["score"].min()
    assert f.best_score == pytest.approx(winner["score"])

    forecast = f.forecast_
    assert list(forecast.columns) == ["month", "co2"] and len(forecast) == 6
    assert forecast["month"].iloc[0] == monthly["month"].iloc[-6]
    test_mae = np.mean(np.abs(forecast["co2"].to_numpy() - monthly["co2"].iloc[-6:].to_numpy()))
    naive_mae = np.mean(
        np.abs(monthly["co2"].iloc[-18:-12].to_numpy() - monthly["co2"].iloc[-6:].to_numpy())
    )
    assert test_mae < 2 * naive_mae

    c = MlflowClient(workspace.tracking.tracking_uri)
    children = c.search_runs(
        [c.get_run(f.best_run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{f.best_run_id}'",
    )
    assert len(children) == 2
    files = {a.path for a in c.list_artifacts(f.best_run_id)}
    assert {"leaderboard.csv", "forecast.csv", "charts"} <= files
    loaded = mlflow.pyfunc.load_model(f.best_model_uri_)
    out = loaded.predict(pd.DataFrame({"month": forecast["month"].head(2)}))
    assert np.allclose(out["co2"], forecast["co2"].head(2))


def test_several_series_get_a_model_each(workspace: Workspace, monthly: pd.DataFrame) -> None:
    two = pd.concat(
        [monthly.assign(site="a"), monthly.assign(site="b", co2=monthly["co2"] * 2)],
        ignore_index=True,
    )
    f = AutoMLForecaster(
        time_column="month",
        target_column="co2",
        horizon=3,
        series_id_columns=["site"],
        n_backtests=1,
        time_limit_minutes=None,
        n_trials=2,
        models=["rf"],
        context=workspace,
    )
    f.fit(two)
    assert f.frequency_ == "MS" and f.season_length_ == 12
    assert set(f.forecast_["site"]) == {"a", "b"} and len(f.forecast_) == 6
    assert set(f.best_models_) == {("a",), ("b",)}
    only_b = f.predict(pd.DataFrame({"site": ["b"]}))
    assert set(only_b["site"]) == {"b"}
    b_level = f.forecast_[f.forecast_["site"] == "b"]["co2"].mean()
    a_level = f.forecast_[f.forecast_["site"] == "a"]["co2"].mean()
    assert b_level == pytest.approx(2 * a_level, rel=0.05)


def test_bad_series_are_clear_errors(workspace: Workspace, monthly: pd.DataFrame) -> None:
    short = AutoMLForecaster(
        time_column="month",
        target_column="co2",
        horizon=12,
        n_trials=2,
        time_limit_minutes=None,
        context=workspace,
    )
    with pytest.raises(AutoMLError, match=r"has 30 points; .* needs at least"):
        short.fit(monthly.head(30))
    with pytest.raises(InvalidArgument, match="time_column is required"):
        AutoMLForecaster(target_column="co2").fit(monthly)
    twice = pd.concat([monthly.head(50), monthly.head(50)])
    with pytest.raises(AutoMLError, match="repeated timestamps"):
        AutoMLForecaster(
            time_column="month", target_column="co2", horizon=3, context=workspace
        ).fit(twice)
    assert season_length_of("MS") == 12 and season_length_of("D") == 7
    assert season_length_of("15min") == 1


@pytest.mark.parametrize("learner", ["arima", "sarimax"])
def test_statistical_models_are_searched_and_backtested(
    workspace: Workspace, monthly: pd.DataFrame, learner: str
) -> None:
    series = monthly.tail(120).reset_index(drop=True)
    f = AutoMLForecaster(
        time_column="month",
        target_column="co2",
        horizon=6,
        frequency="MS",
        n_backtests=2,
        time_limit_minutes=None,
        n_trials=2,
        models=[learner],
        context=workspace,
    )
    f.fit(series)
    # The search starts from small orders on the seasonally differenced series.
    first = f.trials_[0]
    assert first.learner == learner
    assert {k: first.config[k] for k in ts_starting_points([learner], 12)[learner]} == (
        ts_starting_points([learner], 12)[learner]
    )
    board = f.backtest_
    row = board[board["model"] == f"flaml:{learner}"]
    assert len(row) == 1 and np.isfinite(row["score"].iloc[0])
    assert row["score"].iloc[0] < board[board["model"] == "seasonal_naive"]["score"].iloc[0]
    assert np.isfinite(f.forecast_["co2"]).all() and len(f.forecast_) == 6


def test_every_baseline_is_the_model_it_is_named_after(monthly: pd.DataFrame) -> None:
    y = monthly.set_index("month")["co2"].asfreq("MS")
    board, winner = backtest(
        y,
        (),
        None,
        horizon=6,
        n_backtests=2,
        season=12,
        frequency="MS",
        score=lambda a, f: float(np.mean(np.abs(a - f))),
        budget=Budget(None),
        seed=0,
        n_jobs=1,
    )
    assert {"last_value", "drift", "seasonal_naive", "seasonal_drift"} <= set(board["model"])
    assert winner.name in set(board["model"]) or winner.name.startswith("average(")
    # Scored on the same windows, seasonal drift is its own model, not a FLAML one.
    cut = y.iloc[:-6]
    expected = SeasonalDrift(12).fit(y.iloc[:-12]).forecast(6)
    actual = y.iloc[-12:-6].to_numpy()
    origin_1 = board.set_index("model").loc["seasonal_drift", "origin_1"]
    assert origin_1 == pytest.approx(float(np.mean(np.abs(actual - expected))))
    assert len(cut) == len(y) - 6


def test_unknown_models_are_refused_before_anything_is_written(
    workspace: Workspace, monthly: pd.DataFrame
) -> None:
    f = AutoMLForecaster(
        time_column="month",
        target_column="co2",
        horizon=6,
        frequency="MS",
        time_limit_minutes=None,
        n_trials=2,
        models=["lgbm", "no_such_learner"],
        experiment_name="never_written",
        context=workspace,
    )
    with pytest.raises(InvalidArgument, match="no_such_learner"):
        f.fit(monthly)
    with pytest.raises(InvalidArgument, match="n_trials must be an integer of at least 2"):
        AutoMLForecaster(time_column="month", target_column="co2", n_trials=1).fit(monthly)
    c = MlflowClient(workspace.tracking.tracking_uri)
    assert c.get_experiment_by_name("never_written") is None
