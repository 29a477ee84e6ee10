"""Budget accounting: FLAML gets the user's limit minus lakeloom's measured and reserved work."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lakeloom.automl.estimators as estimators
from lakeloom import Workspace
from lakeloom.automl import AutoMLClassifier
from lakeloom.automl.ensemble import greedy_weights
from lakeloom.automl.finalize import refit_budget
from lakeloom.automl.search import (
    FINISH_RESERVE_S,
    FLAML_OVERRUN_S,
    MIN_SEARCH_S,
    REFIT_SHARE,
    Budget,
    SearchResult,
    Trial,
    decide_eval_method,
)
from lakeloom.errors import TimeLimitTooSmall

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:flaml")


def test_the_search_gets_the_limit_minus_time_spent_and_reserved() -> None:
    budget = Budget(60.0, start=time.monotonic() - 2.0)  # 2 s already spent
    search = budget.search_seconds(FINISH_RESERVE_S)
    assert search is not None
    expected = (60.0 - 2.0 - FINISH_RESERVE_S) * (1 - REFIT_SHARE) - FLAML_OVERRUN_S
    assert search == pytest.approx(expected, abs=0.05)
    assert budget.report()["search_budget"] == search


def test_a_limit_too_small_for_one_trial_is_refused_with_the_numbers() -> None:
    budget = Budget(6.0, start=time.monotonic() - 1.5)
    with pytest.raises(TimeLimitTooSmall, match=r"took 1\.\ds .* at least \d+s"):
        budget.search_seconds(FINISH_RESERVE_S)
    assert Budget(None).search_seconds() is None  # a trial count alone: no time limit


def test_the_estimator_refuses_a_tiny_limit_before_reading_anything(workspace: Workspace) -> None:
    automl = AutoMLClassifier(target_column="y", time_limit_minutes=0.05, context=workspace)
    with pytest.raises(TimeLimitTooSmall, match="too small for even one trial"):
        automl.fit("raw.does_not_matter")
    assert FINISH_RESERVE_S + MIN_SEARCH_S > 0.05 * 60


# On a busy machine the search can overrun into the refit share, and lakeloom then warns
# that it refit a cheaper model: that warning is not what this test checks.
@pytest.mark.filterwarnings("ignore::lakeloom.automl.estimators.AutoMLWarning")
def test_fit_hands_flaml_the_limit_minus_measured_overhead(
    workspace: Workspace, breast_cancer: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    real = estimators.run_search

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen["time_budget"] = kwargs["time_budget"]
        return real(*args, **kwargs)

    monkeypatch.setattr(estimators, "run_search", spy)
    automl = AutoMLClassifier(
        target_column="diagnosis",
        time_limit_minutes=2,
        n_trials=2,
        models=["extra_tree"],  # FLAML's cheap starts: this test is about the arithmetic
        context=workspace,
        ensemble=False,
    )
    automl.fit(breast_cancer)
    report = automl.budget_
    spent_before = report["prepare"] + report["tracking"]
    share = (120.0 - spent_before - FINISH_RESERVE_S) * (1 - REFIT_SHARE)
    expected = share - min(FLAML_OVERRUN_S, 0.1 * share)
    assert seen["time_budget"] == pytest.approx(expected, abs=0.25)
    assert report["search_budget"] == seen["time_budget"]
    assert report["total"] == pytest.approx(
        sum(report[k] for k in ("prepare", "tracking", "search", "refit", "logging")), abs=0.5
    )


def test_cross_validation_while_the_data_is_small_for_the_budget() -> None:
    assert decide_eval_method(569, 30, 60.0) == "cv"
    assert decide_eval_method(200_000, 30, 60.0) == "holdout"
    assert decide_eval_method(100_000, 100, None) == "holdout"


def test_greedy_ensemble_weights_are_never_worse_than_the_best_single() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    preds = [y + rng.normal(scale=s, size=200) for s in (0.5, 0.6, 2.0)]

    def loss(p: np.ndarray) -> float:
        return float(np.mean((p - y) ** 2))

    weights, ens = greedy_weights(preds, loss)
    assert ens <= min(loss(p) for p in preds)
    assert sum(weights) == pytest.approx(1.0)
    assert weights[2] == 0.0


def test_a_refit_gets_at_least_twice_its_expected_cost() -> None:
    trial = Trial(1, "lgbm", {}, 0.1, train_time=5.0, wall_clock=5.0, sample_size=100)
    result = SearchResult([trial], eval_method="cv", n_splits=5, seconds=5.0, task=None)
    expected = 2 * (5.0 / 4 * 1.2 + 0.05)  # a cv trial fits 5 models on 4/5 of the rows
    assert refit_budget(trial, result, 100, left=0.5) == pytest.approx(expected)
    assert refit_budget(trial, result, 100, left=30.0) == 30.0
