"""Model families by one name each: the estimator each name means for each task.

=====================  ============================  ============================
name                   classification                regression
=====================  ============================  ============================
``logistic_regression``  ``LogisticRegression``       (use ``linear_regression``)
``linear_regression``    (use ``logistic_regression``)  ``LinearRegression``
``random_forest``      ``RandomForestClassifier``    ``RandomForestRegressor``
``xgboost``            ``XGBClassifier``             ``XGBRegressor``
``lightgbm``           ``LGBMClassifier``            ``LGBMRegressor``
``gbt``                Spark ML only (the spark engine)
=====================  ============================  ============================
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

from lakeloom.errors import InvalidArgument

__all__ = [
    "FAMILIES",
    "Family",
    "family",
    "make_estimator",
    "parse_models",
    "resolve_params",
]


@dataclass(frozen=True)
class Family:
    """One model family: its estimator classes and what its pipeline needs."""

    name: str
    #: "module:Class" for classification and regression (None: not for that task).
    classifier: str | None
    regressor: str | None
    #: Whether inputs should be standardised (linear models).
    needs_scaling: bool
    #: The pip package that provides it (for messages and the model's requirements).
    package: str
    #: Defaults lakeloom sets on top of the library's (seeds are set separately).
    defaults: Mapping[str, Any]
    #: Name of the seed parameter, if any.
    seed_param: str | None = "random_state"

    def estimator_path(self, task: str) -> str:
        """``module:Class`` of the estimator for ``task``, or a clear error."""
        path = self.regressor if task == "regression" else self.classifier
        if path is None:
            other = "linear_regression" if task == "regression" else "logistic_regression"
            kind = "regression" if task == "regression" else "classification"
            raise InvalidArgument(
                f"model {self.name!r} does not do {kind}; use {other!r} for a {kind} label"
            )
        return path


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "logistic_regression",
            "sklearn.linear_model:LogisticRegression",
            None,
            needs_scaling=True,
            package="scikit-learn",
            defaults={"max_iter": 1000},
        ),
        Family(
            "linear_regression",
            None,
            "sklearn.linear_model:LinearRegression",
            needs_scaling=True,
            package="scikit-learn",
            defaults={},
            seed_param=None,
        ),
        Family(
            "random_forest",
            "sklearn.ensemble:RandomForestClassifier",
            "sklearn.ensemble:RandomForestRegressor",
            needs_scaling=False,
            package="scikit-learn",
            defaults={"n_estimators": 100},
        ),
        Family(
            "xgboost",
            "xgboost:XGBClassifier",
            "xgboost:XGBRegressor",
            needs_scaling=False,
            package="xgboost",
            defaults={"n_estimators": 200, "learning_rate": 0.1, "tree_method": "hist"},
        ),
        Family(
            "lightgbm",
            "lightgbm:LGBMClassifier",
            "lightgbm:LGBMRegressor",
            needs_scaling=False,
            package="lightgbm",
            defaults={"n_estimators": 200, "verbose": -1},
        ),
        Family(
            "gbt",
            None,
            None,
            needs_scaling=False,
            package="pyspark",
            defaults={},
        ),
    )
}

#: Families that only exist on the Spark engine.
_SPARK_ONLY = frozenset({"gbt"})


def family(name: str) -> Family:
    """The family called ``name``, or an error listing the known names."""
    found = FAMILIES.get(name.strip().lower()) if isinstance(name, str) else None
    if found is None:
        known = [n for n in FAMILIES if n not in _SPARK_ONLY]
        close = get_close_matches(str(name), known, n=2, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InvalidArgument(
            f"unknown model {name!r}{hint} (known: {', '.join(known)}; gbt on the spark engine)"
        )
    if found.name in _SPARK_ONLY:
        raise InvalidArgument(
            f"model {found.name!r} is Spark ML's gradient-boosted trees and trains on the spark "
            "engine only; on the local engine use 'xgboost' or 'lightgbm'"
        )
    return found


def parse_models(models: str | Sequence[str]) -> list[str]:
    """Model family names from ``"a,b"`` or a list, validated, in order, without repeats."""
    items = models.split(",") if isinstance(models, str) else list(models)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            continue
        name = family(item).name
        if name not in names:
            names.append(name)
    if not names:
        raise InvalidArgument(
            "no model given: pass models like logistic_regression,random_forest,xgboost"
        )
    return names


def _estimator_class(fam: Family, task: str) -> type:
    module_name, _, class_name = fam.estimator_path(task).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise InvalidArgument(
            f"model {fam.name!r} needs the {fam.package!r} package: "
            f"pip install 'lakeloom[automl]' (or pip install {fam.package})"
        ) from None
    cls: type = getattr(module, class_name)
    return cls


def resolve_params(
    params: Mapping[str, Any] | None, models: Sequence[str], task: str
) -> dict[str, dict[str, Any]]:
    """Hyperparameters per model from ``params``, validated against each estimator.

    Keys that are model names hold that model's parameters (``{"xgboost": {"max_depth": 4}}``);
    other keys apply to every model whose estimator has that parameter. A parameter that no
    selected model has is an error (a typo would otherwise be silently ignored).
    """
    own: dict[str, dict[str, Any]] = {m: {} for m in models}
    shared: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key in FAMILIES:
            if key not in own:
                raise InvalidArgument(
                    f"params for model {key!r}, which is not among the models trained "
                    f"({', '.join(models)})"
                )
            if not isinstance(value, Mapping):
                raise InvalidArgument(
                    f"params[{key!r}] must be a mapping of hyperparameters, got {value!r}"
                )
            own[key].update(value)
        else:
            shared[key] = value
    out: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for model in models:
        valid = _estimator_class(family(model), task)().get_params(deep=False)
        unknown = sorted(k for k in own[model] if k not in valid)
        if unknown:
            raise InvalidArgument(
                f"model {model!r} has no parameter(s) {', '.join(unknown)}; "
                f"its parameters: {', '.join(sorted(valid))}"
            )
        accepted = {k: v for k, v in shared.items() if k in valid}
        used.update(accepted)
        out[model] = {**accepted, **own[model]}
    unused = sorted(set(shared) - used)
    if unused:
        raise InvalidArgument(
            f"no model among {', '.join(models)} has parameter(s) {', '.join(unused)}"
        )
    return out


def make_estimator(
    name: str,
    task: str,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
) -> Any:
    """A fresh, unfitted estimator of family ``name`` for ``task`` with ``params``."""
    fam = family(name)
    cls = _estimator_class(fam, task)
    estimator = cls()
    valid = estimator.get_params(deep=False)
    settings: dict[str, Any] = dict(fam.defaults)
    if fam.seed_param and fam.seed_param in valid:
        settings[fam.seed_param] = seed
    given = dict(params or {})
    unknown = sorted(k for k in given if k not in valid)
    if unknown:
        raise InvalidArgument(
            f"model {fam.name!r} ({cls.__name__}) has no parameter(s) {', '.join(unknown)}; "
            f"its parameters: {', '.join(sorted(valid))}"
        )
    settings.update(given)
    try:
        estimator.set_params(**settings)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"invalid parameters for model {fam.name!r}: {exc}") from None
    return estimator
