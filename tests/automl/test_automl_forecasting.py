"""AutoMLForecaster: FLAML's forecasting search judged by rolling-origin backtests."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from lakeloom import Workspace
from lakeloom.automl import AutoMLForecaster
from lakeloom.automl.forecasting import season_length_of
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
