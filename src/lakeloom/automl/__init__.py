"""AutoML: FLAML's search with lakeloom's featurizer, budget, ensembles, tracking and charts.

>>> from lakeloom.automl import AutoMLClassifier
>>> automl = AutoMLClassifier(experiment_name="customer_churn", target_column="churned",
...                           time_limit_minutes=30, n_trials=50)          # doctest: +SKIP
>>> automl.fit(train_df)                                                   # doctest: +SKIP
>>> automl.best_model.predict(test_df)                                     # doctest: +SKIP
"""

from lakeloom.automl.data import AutoMLContext
from lakeloom.automl.estimators import AutoMLClassifier, AutoMLRegressor, AutoMLWarning
from lakeloom.automl.explain import Explanation
from lakeloom.automl.featurize import AutoFeaturizer, UnseenCategoryWarning
from lakeloom.automl.forecasting import AutoMLForecaster

__all__ = [
    "AutoFeaturizer",
    "AutoMLClassifier",
    "AutoMLContext",
    "AutoMLForecaster",
    "AutoMLRegressor",
    "AutoMLWarning",
    "Explanation",
    "UnseenCategoryWarning",
]
