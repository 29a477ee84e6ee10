"""Spark ML model families, their default parameter grids, and user grids checked against them.

=======================  ==========================  =========================
name                     classification              regression
=======================  ==========================  =========================
``logistic_regression``  ``LogisticRegression``      (use ``linear_regression``)
``linear_regression``    (use ``logistic_regression``)  ``LinearRegression``
``random_forest``        ``RandomForestClassifier``  ``RandomForestRegressor``
``gbt``                  ``GBTClassifier`` (binary)  ``GBTRegressor``
=======================  ==========================  =========================

The names are the scikit-learn path's (:mod:`lakeloom.models.families`), so the same
``--models`` line trains the same kind of model on either engine. Grids are small on purpose:
cross-validation fits ``folds x grid points`` pipelines.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from lakeloom.errors import InvalidArgument

__all__ = [
    "SPARK_FAMILIES",
    "SparkFamily",
    "make_spark_estimator",
    "parse_spark_models",
    "resolve_grids",
    "spark_family",
]

_ML = "pyspark.ml"


@dataclass(frozen=True)
class SparkFamily:
    """One Spark ML family: its estimator classes and default grid."""

    name: str
    #: ``module:Class`` for classification and regression (None: not for that task).
    classifier: str | None
    regressor: str | None
    #: Parameter name to the values cross-validation tries.
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    #: Fixed parameters lakeloom sets on top of Spark's defaults.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Whether the classifier only does two classes (Spark's GBTClassifier).
    binary_only: bool = False

    def estimator_path(self, task: str) -> str:
        """``module:Class`` for ``task``, or a one-line error naming the family to use."""
        path = self.regressor if task == "regression" else self.classifier
        if path is None:
            other = "linear_regression" if task == "regression" else "logistic_regression"
            kind = "regression" if task == "regression" else "classification"
            raise InvalidArgument(
                f"model {self.name!r} does not do {kind}; use {other!r} for a {kind} label"
            )
        if self.binary_only and task == "multiclass":
            raise InvalidArgument(
                f"Spark's {self.name!r} classifier does two classes only and this label has "
                "more; use 'random_forest' or 'logistic_regression'"
            )
        return path


SPARK_FAMILIES: dict[str, SparkFamily] = {
    f.name: f
    for f in (
        SparkFamily(
            "logistic_regression",
            f"{_ML}.classification:LogisticRegression",
            None,
            grid={"regParam": [0.0, 0.01, 0.1], "elasticNetParam": [0.0, 0.5]},
            defaults={"maxIter": 100},
        ),
        SparkFamily(
            "linear_regression",
            None,
            f"{_ML}.regression:LinearRegression",
            grid={"regParam": [0.0, 0.01, 0.1], "elasticNetParam": [0.0, 0.5]},
            defaults={"maxIter": 100},
        ),
        SparkFamily(
            "random_forest",
            f"{_ML}.classification:RandomForestClassifier",
            f"{_ML}.regression:RandomForestRegressor",
            grid={"numTrees": [20, 50], "maxDepth": [5, 8]},
        ),
        SparkFamily(
            "gbt",
            f"{_ML}.classification:GBTClassifier",
            f"{_ML}.regression:GBTRegressor",
            grid={"maxIter": [20, 50], "maxDepth": [3, 5]},
            binary_only=True,
        ),
    )
}


def spark_family(name: str) -> SparkFamily:
    """The Spark family called ``name``, or an error listing the known names."""
    found = SPARK_FAMILIES.get(name.strip().lower()) if isinstance(name, str) else None
    if found is None:
        known = list(SPARK_FAMILIES)
        close = get_close_matches(str(name), known, n=2, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InvalidArgument(
            f"unknown Spark ML model {name!r}{hint} (on the spark engine: {', '.join(known)})"
        )
    return found


def parse_spark_models(models: str | Sequence[str]) -> list[str]:
    """Family names from ``"a,b"`` or a list, validated, in order, without repeats."""
    items = models.split(",") if isinstance(models, str) else list(models)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            continue
        name = spark_family(item).name
        if name not in names:
            names.append(name)
    if not names:
        raise InvalidArgument("no model given: pass models like logistic_regression,gbt")
    return names


def _estimator_class(fam: SparkFamily, task: str) -> type:
    module_name, _, class_name = fam.estimator_path(task).partition(":")
    cls: type = getattr(importlib.import_module(module_name), class_name)
    return cls


def _values(model: str, name: str, value: Any) -> list[Any]:
    values = list(value) if isinstance(value, list | tuple) else [value]
    if not values:
        raise InvalidArgument(f"the grid of {model}.{name} is empty; give at least one value")
    return values


def resolve_grids(
    grids: Mapping[str, Any] | None, models: Sequence[str], task: str
) -> dict[str, dict[str, list[Any]]]:
    """Each model's grid: its defaults, replaced by what ``grids`` gives.

    Keys that are model names hold that model's grid (``{"gbt": {"maxDepth": [3, 6]}}``);
    other keys apply to every model that has the parameter (``{"maxIter": 50}``). A single
    value fixes the parameter, a list is searched. A parameter no model has is an error.
    """
    own: dict[str, dict[str, Any]] = {m: {} for m in models}
    shared: dict[str, Any] = {}
    for key, value in (grids or {}).items():
        if key in SPARK_FAMILIES:
            if key not in own:
                raise InvalidArgument(
                    f"a grid for model {key!r}, which is not among the models trained "
                    f"({', '.join(models)})"
                )
            if not isinstance(value, Mapping):
                raise InvalidArgument(
                    f"the grid of {key!r} must map parameter names to values, got {value!r}"
                )
            own[key].update(value)
        else:
            shared[key] = value
    out: dict[str, dict[str, list[Any]]] = {}
    used: set[str] = set()
    for model in models:
        fam = spark_family(model)
        valid = {p.name for p in _estimator_class(fam, task)().params}
        unknown = sorted(k for k in own[model] if k not in valid)
        if unknown:
            raise InvalidArgument(
                f"Spark ML model {model!r} has no parameter(s) {', '.join(unknown)}; "
                f"its parameters: {', '.join(sorted(valid))}"
            )
        grid = {k: list(v) for k, v in fam.grid.items() if k in valid}
        for key, value in shared.items():
            if key in valid:
                used.add(key)
                grid[key] = _values(model, key, value)
        for key, value in own[model].items():
            grid[key] = _values(model, key, value)
        out[model] = grid
    unused = sorted(set(shared) - used)
    if unused:
        raise InvalidArgument(
            f"no Spark ML model among {', '.join(models)} has parameter(s) {', '.join(unused)}"
        )
    return out


def make_spark_estimator(name: str, task: str, *, seed: int, **columns: str) -> Any:
    """A fresh estimator of family ``name`` for ``task`` (``columns``: featuresCol, ...)."""
    fam = spark_family(name)
    estimator = _estimator_class(fam, task)(**columns)
    settings = dict(fam.defaults)
    if estimator.hasParam("seed"):
        settings["seed"] = seed
    for key, value in settings.items():
        estimator.set(estimator.getParam(key), value)
    return estimator
