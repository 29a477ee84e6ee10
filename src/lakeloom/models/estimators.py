"""Small scikit-learn meta-estimators that lakeloom's saved pipelines may contain.

They are plain, top-level classes so skops can save and load them, and they are in the
list of types lakeloom trusts (:mod:`lakeloom.models.trust`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import LabelEncoder

__all__ = ["LabelEncodedClassifier"]


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Fit ``estimator`` on label codes ``0..k-1`` and predict the original labels.

    XGBoost only accepts labels ``0..k-1``; this wrapper lets it learn from boolean or
    string labels and still predict them.

    >>> from sklearn.linear_model import LogisticRegression
    >>> clf = LabelEncodedClassifier(LogisticRegression()).fit([[0], [1]], ["no", "yes"])
    >>> clf.predict([[1]]).tolist()
    ['yes']
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> LabelEncodedClassifier:
        """Encode ``y`` and fit a clone of ``estimator`` on the codes."""
        self.label_encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.label_encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(
            X, self.label_encoder_.transform(y), **fit_params
        )
        return self

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """The predicted original labels."""
        codes = np.asarray(self.estimator_.predict(X)).astype(int)
        return np.asarray(self.label_encoder_.inverse_transform(codes))

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """Class probabilities, columns in the order of ``classes_``."""
        return np.asarray(self.estimator_.predict_proba(X))

    @property
    def feature_importances_(self) -> np.ndarray[Any, Any]:
        """The wrapped estimator's feature importances."""
        return np.asarray(self.estimator_.feature_importances_)
