"""The types lakeloom trusts when it saves and loads scikit-learn models with skops.

MLflow 3 saves scikit-learn models with skops, which refuses to load any type that is not on
an allow-list, because loading a type runs its code. The allow-list MLflow uses comes from
the model's own ``MLmodel`` file, so whoever wrote the model decides what is trusted.
lakeloom's own loader (:func:`lakeloom.models.loading.load_model_dir`) uses
:data:`TRUSTED_TYPES` instead: exactly the types lakeloom's pipelines contain, plus any the
caller names explicitly. A model with other types fails to load with a message naming them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lakeloom.errors import UntrustedModelTypes

__all__ = ["TRUSTED_TYPES", "required_trusted_types", "untrusted_message"]

#: Types outside skops' built-in allow-list that lakeloom's model pipelines contain.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # numpy dtypes stored as hyperparameters (OneHotEncoder(dtype=np.float64)).
        "numpy.dtype",
        # random_forest: the fitted trees.
        "sklearn.tree._tree.Tree",
        # xgboost: the estimator and its booster (saved as XGBoost's own format).
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        # lightgbm: the estimator, its booster (a model string) and its parameters.
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        # lakeloom: label encoding for estimators that only take 0..k-1 labels.
        "lakeloom.models.estimators.LabelEncodedClassifier",
        # lakeloom's AutoML pipelines (names only: nothing here imports the automl layer).
        "lakeloom.automl.featurize.AutoFeaturizer",
        "lakeloom.automl.ensemble.WeightedEnsembleClassifier",
        "lakeloom.automl.ensemble.WeightedEnsembleRegressor",
    }
)


def untrusted_message(what: str, types: Iterable[str]) -> str:
    """The one-line explanation of why a model with ``types`` is refused."""
    names = ", ".join(sorted(types))
    return (
        f"{what} contains type(s) lakeloom does not trust: {names}. Loading a model runs the "
        "code of the types it names, so lakeloom only loads the types its own pipelines use; "
        "if you trust where this model comes from, pass trusted_types=[...] with these names"
    )


def required_trusted_types(model: Any, *, extra: Iterable[str] = ()) -> list[str]:
    """The types outside skops' defaults that ``model`` contains; all must be trusted.

    This is the list a lakeloom model declares in its ``MLmodel`` file (least privilege:
    only what that model needs). Raises :class:`UntrustedModelTypes` for anything else.
    """
    import skops.io  # type: ignore[import-untyped]

    found = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    unknown = found - TRUSTED_TYPES - set(extra)
    if unknown:
        raise UntrustedModelTypes(untrusted_message("the model", unknown), unknown)
    return sorted(found)
