"""Choosing the final model: LightGBM's defaults win unless the tuned models clearly beat them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flaml.automl.task.factory import task_factory
from sklearn.datasets import load_breast_cancer

from lakeloom.automl.finalize import FinalModel, clearly_better, default_lgbm, finalize
from lakeloom.automl.scoring import resolve_metric
from lakeloom.automl.search import LGBM_DEFAULTS, Budget, SearchResult, Trial

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _trial(number: int, learner: str, config: Mapping[str, Any], loss: float) -> Trial:
    return Trial(number, learner, dict(config), loss, 0.05, 0.1 * number, 0)


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, np.asarray(y)


def _final(trials: list[Trial]) -> FinalModel:
    X, y = _data()
    result = SearchResult(trials, "cv", 5, 1.0, task_factory("classification", X, y))
    return finalize(
        X,
        y,
        result,
        metric=resolve_metric("roc_auc", "classification", 2),
        classes=[0, 1],
        budget=Budget(None),
        finish_reserve=0.0,
        ensemble=True,
        seed=0,
        n_jobs=1,
    )


def test_one_standard_error_rule_on_per_fold_losses() -> None:
    metric = resolve_metric("mae", "regression")
    y = np.zeros(100)
    folds = [np.arange(i, 100, 5) for i in range(5)]
    incumbent = np.full(100, 1.0)
    assert clearly_better(np.full(100, 0.5), incumbent, y, folds, metric)
    assert not clearly_better(incumbent.copy(), incumbent, y, folds, metric)
    # Better on average, but only because of one fold: within one standard error.
    noisy = incumbent.copy()
    noisy[folds[0]] = 0.0
    noisy[folds[1]] = 1.2
    noisy[folds[2]] = 1.2
    assert not clearly_better(noisy, incumbent, y, folds, metric)
    assert not clearly_better(np.full(100, 1.5), incumbent, y, folds, metric)


def test_a_tuned_model_no_better_than_the_defaults_leaves_the_defaults() -> None:
    defaults = _trial(1, "lgbm", LGBM_DEFAULTS, 0.02)
    # A "tuned" LightGBM that is the defaults with one more tree: the search saw it as
    # better (a lower trial loss), out of fold it is the same model.
    tuned = _trial(2, "lgbm", {**LGBM_DEFAULTS, "n_estimators": 101}, 0.01)
    final = _final([defaults, tuned])
    assert default_lgbm([defaults, tuned]) is defaults
    assert [(t.number, w) for t, w in final.members] == [(1, 1.0)]


def test_a_clearly_better_tuned_model_replaces_the_defaults() -> None:
    # The first LightGBM trial stands for the defaults; here it is crippled (one stump).
    weak = _trial(1, "lgbm", {**LGBM_DEFAULTS, "n_estimators": 1, "num_leaves": 2}, 0.2)
    tuned = _trial(2, "lgbm", LGBM_DEFAULTS, 0.01)
    final = _final([weak, tuned])
    assert 2 in [t.number for t, w in final.members if w > 0]
    assert not any("defaults are kept" in n for n in final.notes)
