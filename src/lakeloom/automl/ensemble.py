"""The last step of every AutoML model: fitted members averaged with weights.

A single winner is an ensemble of one. Classifiers average probabilities and return the
original class labels (the members are trained on label codes ``0..k-1``); regressors average
predictions. Weights come from greedy ensemble selection (Caruana et al., 2004) on
out-of-fold predictions: :func:`greedy_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone

__all__ = ["WeightedEnsembleClassifier", "WeightedEnsembleRegressor", "greedy_weights"]


class _WeightedEnsemble(BaseEstimator):  # type: ignore[misc]
    def __init__(self, members: Sequence[Any] = (), weights: Sequence[float] = ()) -> None:
        self.members = members
        self.weights = weights

    def _weights(self) -> np.ndarray:
        w = np.asarray(self.weights if len(self.weights) else [1.0] * len(self.members), float)
        if len(w) != len(self.members) or w.sum() <= 0:
            raise ValueError("weights must be positive and one per member")
        return w / w.sum()

    def _fitted(self) -> list[Any]:
        members: list[Any] | None = getattr(self, "members_", None)
        if members is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit first")
        return members

    @property
    def named_members(self) -> list[tuple[str, float]]:
        """(member class name, weight) pairs, heaviest first."""
        pairs = [
            (type(m).__name__ if not hasattr(m, "steps") else type(m.steps[-1][1]).__name__, w)
            for m, w in zip(self._fitted(), self._weights(), strict=True)
        ]
        return sorted(pairs, key=lambda p: -p[1])


class WeightedEnsembleClassifier(ClassifierMixin, _WeightedEnsemble):  # type: ignore[misc]
    """Weighted average of the members' class probabilities.

    ``classes`` are the original labels; member ``i`` predicts codes into it.
    """

    def __init__(
        self,
        members: Sequence[Any] = (),
        weights: Sequence[float] = (),
        classes: Sequence[Any] = (),
    ) -> None:
        super().__init__(members, weights)
        self.classes = classes

    @classmethod
    def from_fitted(
        cls, members: Sequence[Any], weights: Sequence[float], classes: Sequence[Any]
    ) -> WeightedEnsembleClassifier:
        """An ensemble of members that are already fitted on label codes."""
        ens = cls(list(members), list(weights), list(classes))
        ens.members_ = list(members)
        ens.classes_ = np.asarray(list(classes))
        return ens

    def fit(self, X: Any, y: Any) -> WeightedEnsembleClassifier:
        """Refit clones of the members on ``X`` and ``y`` (original labels)."""
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.members_ = [clone(m).fit(X, codes) for m in self.members]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        members = self._fitted()
        out = np.zeros((len(X), len(self.classes_)))
        for member, w in zip(members, self._weights(), strict=True):
            proba = np.asarray(member.predict_proba(X))
            cols = np.asarray(getattr(member, "classes_", np.arange(proba.shape[1])), dtype=int)
            out[:, cols] += w * proba
        total = out.sum(axis=1, keepdims=True)
        return out / np.where(total > 0, total, 1.0)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable original label per row."""
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]


class WeightedEnsembleRegressor(RegressorMixin, _WeightedEnsemble):  # type: ignore[misc]
    """Weighted average of the members' predictions."""

    @classmethod
    def from_fitted(
        cls, members: Sequence[Any], weights: Sequence[float]
    ) -> WeightedEnsembleRegressor:
        """An ensemble of members that are already fitted."""
        ens = cls(list(members), list(weights))
        ens.members_ = list(members)
        return ens

    def fit(self, X: Any, y: Any) -> WeightedEnsembleRegressor:
        """Refit clones of the members."""
        self.members_ = [clone(m).fit(X, y) for m in self.members]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Weighted mean of the members' predictions."""
        members = self._fitted()
        preds = [np.asarray(m.predict(X), dtype=float).ravel() for m in members]
        return np.asarray(np.average(np.vstack(preds), axis=0, weights=self._weights()))


def greedy_weights(
    predictions: Sequence[np.ndarray],
    loss: Callable[[np.ndarray], float],
    *,
    rounds: int = 25,
) -> tuple[list[float], float]:
    """Ensemble selection with replacement: weights (summing to 1) and the ensemble's loss.

    ``predictions[i]`` is candidate ``i``'s out-of-fold output (probabilities or values);
    ``loss`` scores an averaged output (lower is better). Starting from the best single
    candidate, each round adds the candidate that lowers the loss most; a round that lowers
    nothing ends the selection, so the result is never worse than the best single candidate.
    """
    if not predictions:
        raise ValueError("no candidates to ensemble")
    singles = [loss(p) for p in predictions]
    best = int(np.argmin(singles))
    counts = np.zeros(len(predictions))
    counts[best] = 1
    total = predictions[best].astype(float).copy()
    current = singles[best]
    for _ in range(rounds):
        n = counts.sum()
        trials = [loss((total + p) / (n + 1)) for p in predictions]
        pick = int(np.argmin(trials))
        if trials[pick] >= current - 1e-12:
            break
        counts[pick] += 1
        total = total + predictions[pick]
        current = trials[pick]
    return (counts / counts.sum()).tolist(), float(current)
