"""After the search: refit the winner on all rows, or an ensemble of the best trials, in budget.

Candidates are each learner's best trial. Their measured trial time tells what a refit and
out-of-fold predictions will cost; only candidates that fit in the time left are used. When
two or more fit, greedy ensemble selection on out-of-fold predictions picks weights (never
worse than the best single candidate on those predictions); members with weight are refit
on all rows. Otherwise the best candidate whose refit fits is refit alone.

LightGBM's defaults win ties: on small data the best of many tuned trials (or an ensemble of
them) often scores a little better out of fold by luck and a little worse on new rows. So when
the defaults were scored out of fold, the tuned winner replaces them only if it is better by
more than one standard error of the paired per-fold difference (the one-standard-error rule).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from lakeloom.automl.ensemble import (
    WeightedEnsembleClassifier,
    WeightedEnsembleRegressor,
    greedy_weights,
)
from lakeloom.automl.scoring import Metric
from lakeloom.automl.search import Budget, SearchResult, Trial

__all__ = ["FinalModel", "finalize", "with_default_lgbm"]

#: Most candidates considered for the ensemble.
MAX_CANDIDATES = 5


@dataclass
class FinalModel:
    """The model fitted on all rows, and how it was chosen."""

    estimator: Any
    name: str
    #: Loss of the winner: the trial's (single model) or the ensemble's out-of-fold loss.
    loss: float
    members: list[tuple[Trial, float]]
    notes: list[str] = field(default_factory=list)
    #: Out-of-fold loss of each candidate (learner -> loss), when ensembling was tried.
    candidate_losses: dict[str, float] = field(default_factory=dict)


def _refit_cost(trial: Trial, result: SearchResult, rows: int) -> float:
    if result.eval_method == "cv":  # a cv trial trained n_splits models on (k-1)/k of the rows
        per_fit = trial.train_time / result.n_splits * result.n_splits / (result.n_splits - 1)
    else:
        per_fit = trial.train_time / 0.9
    scale = rows / trial.sample_size if trial.sample_size else 1.0
    return per_fit * max(scale, 1.0) * 1.2 + 0.05


def refit_budget(trial: Trial, result: SearchResult, rows: int, left: float) -> float:
    """The deadline LightGBM and XGBoost refits stop at (forests cannot be stopped).

    Twice the expected cost, and at least the time left: a refit cut at a tight deadline is
    a few trees, barely better than the class prior (seen on a busy machine), while no
    deadline at all lets one slow refit overrun the limit without bound.
    """
    return max(left, 2.0 * _refit_cost(trial, result, rows), 1.0)


def _oof_cost(trial: Trial, result: SearchResult) -> float:
    # A cv trial fitted n_splits models, as out-of-fold predictions do; a holdout trial one.
    folds = 1 if result.eval_method == "cv" else result.n_splits
    return trial.train_time * folds * 1.2 + 0.05


def default_lgbm(trials: list[Trial]) -> Trial | None:
    """The search's first LightGBM trial: LightGBM's own defaults (None: not tried)."""
    return next((t for t in trials if t.learner == "lgbm"), None)


def with_default_lgbm(candidates: list[Trial], trials: list[Trial]) -> list[Trial]:
    """``candidates`` with LightGBM's default config second, when the search tried it.

    The search's first LightGBM trial is LightGBM's own defaults (see
    :func:`~lakeloom.automl.search.starting_points`). On small data the best of many trials
    on FLAML's fixed folds is partly luck on those folds; the defaults, scored out of fold on
    fresh folds next to the tuned winners, are a robust candidate (and an ensemble member).
    """
    default = default_lgbm(trials)
    if default is None or any(c is default for c in candidates):
        return candidates
    return [*candidates[:1], default, *candidates[1:]]


def _key(trial: Trial, candidates: list[Trial]) -> str:
    """A candidate's name in the notes: its learner, with the trial number when repeated."""
    same = [c for c in candidates if c.learner == trial.learner]
    return trial.learner if len(same) == 1 else f"{trial.learner}#{trial.number}"


def _make(trial: Trial, result: SearchResult, n_jobs: int) -> Any:
    cls = result.task.estimator_class_from_str(trial.learner)
    return cls(task=result.task, n_jobs=n_jobs, **trial.config)


def _export(flaml_estimator: Any, learner: str) -> Any:
    """The fitted library model, with the preprocessing FLAML's wrapper would have done."""
    model = flaml_estimator.model
    if learner == "sgd":  # FLAML's SGD wrapper normalises rows first
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import Normalizer

        return make_pipeline(Normalizer(), model)
    return model


def _output(model: Any, X: pd.DataFrame, classify: bool, n_classes: int) -> np.ndarray:
    if not classify:
        return np.asarray(model.predict(X), dtype=float).ravel()
    proba = np.asarray(model.predict_proba(X), dtype=float)
    out = np.zeros((len(X), n_classes))
    cols = np.asarray(getattr(model, "classes_", np.arange(proba.shape[1])), dtype=int)
    out[:, cols] = proba
    return out


def _fit_member(
    trial: Trial, result: SearchResult, X: pd.DataFrame, y: np.ndarray, n_jobs: int, budget: float
) -> Any:
    est = _make(trial, result, n_jobs)
    est.fit(X, y, budget=budget if math.isfinite(budget) else None)
    return _export(est, trial.learner)


def _folds(
    X: pd.DataFrame, y: np.ndarray, classify: bool, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 5 (fit rows, predicted rows) splits of the out-of-fold predictions (the same for
    every model)."""
    splitter: KFold | StratifiedKFold
    if classify and np.min(np.bincount(y.astype(int))) >= 5:
        splitter = StratifiedKFold(5, shuffle=True, random_state=seed)
    else:
        splitter = KFold(5, shuffle=True, random_state=seed)
    return list(splitter.split(X, y))


def _oof(
    trial: Trial,
    result: SearchResult,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    classify: bool,
    n_classes: int,
    seed: int,
    n_jobs: int,
) -> np.ndarray:
    out = np.zeros((len(X), n_classes)) if classify else np.zeros(len(X))
    for fit_idx, pred_idx in _folds(X, y, classify, seed):
        model = _fit_member(trial, result, X.iloc[fit_idx], y[fit_idx], n_jobs, math.inf)
        out[pred_idx] = _output(model, X.iloc[pred_idx], classify, n_classes)
    return out


def clearly_better(
    challenger: np.ndarray,
    incumbent: np.ndarray,
    y: np.ndarray,
    folds: list[np.ndarray],
    metric: Metric,
) -> bool:
    """Whether ``challenger``'s out-of-fold output beats ``incumbent``'s by more than one
    standard error of the mean per-fold difference in loss."""
    diffs = np.array(
        [metric.loss(y[i], incumbent[i]) - metric.loss(y[i], challenger[i]) for i in folds]
    )
    if len(diffs) < 2:
        return bool(diffs.sum() > 0)
    se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs)))
    return bool(diffs.mean() > se)


def _assemble(members: list[Any], weights: list[float], classify: bool, classes: list[Any]) -> Any:
    if classify:
        return WeightedEnsembleClassifier.from_fitted(members, weights, classes)
    return WeightedEnsembleRegressor.from_fitted(members, weights)


def finalize(
    X: pd.DataFrame,
    y: np.ndarray,
    result: SearchResult,
    *,
    metric: Metric,
    classes: list[Any],
    budget: Budget,
    finish_reserve: float,
    ensemble: bool,
    seed: int,
    n_jobs: int,
) -> FinalModel:
    """Choose and refit the final model within ``budget`` (see the module docstring)."""
    classify = bool(classes)
    n_classes = len(classes)
    candidates = with_default_lgbm(result.best_per_learner()[:MAX_CANDIDATES], result.trials)

    def left() -> float:
        return budget.remaining() - finish_reserve

    notes: list[str] = []
    pool: list[Trial] = []
    if ensemble and len(candidates) >= 2:
        spend = 0.0
        for c in candidates:
            cost = _oof_cost(c, result) + _refit_cost(c, result, len(X))
            if spend + cost <= left():
                pool.append(c)
                spend += cost
        if len(pool) < 2:
            notes.append("no time left to ensemble: refit the best model alone")
            pool = []
    if pool:
        preds: list[np.ndarray] = []
        for c in pool:
            if _oof_cost(c, result) > left() and len(preds) >= 2:
                notes.append(f"stopped ensembling before {c.learner}: out of time")
                break
            preds.append(
                _oof(
                    c,
                    result,
                    X,
                    y,
                    classify=classify,
                    n_classes=n_classes,
                    seed=seed,
                    n_jobs=n_jobs,
                )
            )
        pool = pool[: len(preds)]
        losses = {_key(c, pool): metric.loss(y, p) for c, p in zip(pool, preds, strict=True)}
        weights, ens_loss = greedy_weights(preds, lambda p: metric.loss(y, p))
        chosen = [(c, w) for c, w in zip(pool, weights, strict=True) if w > 0]
        default = default_lgbm(result.trials)
        d = next((i for i, c in enumerate(pool) if c is default), None)
        if default is not None and d is not None:
            winner = sum(w * p for w, p in zip(weights, preds, strict=True) if w > 0)
            if chosen != [(default, 1.0)] and not clearly_better(
                np.asarray(winner),
                preds[d],
                y,
                [rows for _, rows in _folds(X, y, classify, seed)],
                metric,
            ):
                notes.append(
                    "the tuned models did not beat LightGBM's defaults by more than one "
                    "standard error out of fold: the defaults are kept"
                )
                chosen = [(default, 1.0)]
        began = time.monotonic()
        members = [
            _fit_member(c, result, X, y, n_jobs, refit_budget(c, result, len(X), left()))
            for c, _ in chosen
        ]
        if len(chosen) == 1:
            trial = chosen[0][0]
            if weights[pool.index(trial)] == 1.0:
                notes.append(
                    f"ensembling did not beat {trial.learner} out of fold; it is refit alone"
                )
            model = _assemble(members, [1.0], classify, classes)
            return FinalModel(model, trial.learner, trial.loss, [(trial, 1.0)], notes, losses)
        name = "ensemble(" + "+".join(f"{c.learner}:{w:.2f}" for c, w in chosen) + ")"
        notes.append(f"refit {len(chosen)} members in {time.monotonic() - began:.1f}s")
        model = _assemble(members, [w for _, w in chosen], classify, classes)
        return FinalModel(model, name, ens_loss, chosen, notes, losses)

    # A refit may use a little of the 10% overrun the limit tolerates rather than fall back
    # to a clearly worse model.
    slack = 0.03 * budget.limit if budget.limit is not None else 0.0
    fits = [c for c in candidates if _refit_cost(c, result, len(X)) <= left() + slack]
    trial = fits[0] if fits else min(candidates, key=lambda c: _refit_cost(c, result, len(X)))
    if trial is not candidates[0]:
        notes.append(
            f"refit {trial.learner} instead of {candidates[0].learner}, whose refit would not "
            "fit in the time left"
        )
    member = _fit_member(trial, result, X, y, n_jobs, refit_budget(trial, result, len(X), left()))
    model = _assemble([member], [1.0], classify, classes)
    return FinalModel(model, trial.learner, trial.loss, [(trial, 1.0)], notes)
