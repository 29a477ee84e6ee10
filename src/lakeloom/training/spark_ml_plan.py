"""The Spark side of a model: which columns are features, the preprocessing stages, metrics.

Feature columns are chosen as the scikit-learn path chooses them
(:func:`lakeloom.models.preprocessing.plan_features`), from the Spark schema and one
aggregation: numbers are numeric features, strings and booleans categorical; dates, nested
and binary columns, identifiers (``id``/``*_id`` with every value distinct) and empty columns
are left out, with the reason. Metrics carry the scikit-learn path's names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.models.labels import is_classification
from lakeloom.models.preprocessing import FeaturePlan

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = [
    "FEATURES",
    "LABEL",
    "OUTPUT_COLUMNS",
    "available_metrics",
    "feature_stages",
    "plan_spark_features",
    "spark_evaluator",
    "spark_metrics",
]

#: Internal columns of a pipeline (prefixed so they never meet a table's own).
LABEL = "__ll_label"
FEATURES = "__ll_features"
#: Columns a fitted pipeline adds to the rows it scores.
OUTPUT_COLUMNS = ("prediction", "probability", "rawPrediction", "predicted_label")
_DATE_REASON = "a date/time column: derive numeric features from it first"

#: metric -> (evaluator, Spark's metric name, metric label or None, tasks it applies to).
_METRICS: dict[str, tuple[str, str, float | None, tuple[str, ...]]] = {
    "accuracy": ("multiclass", "accuracy", None, ("binary", "multiclass")),
    "precision": ("multiclass", "precisionByLabel", 1.0, ("binary",)),
    "recall": ("multiclass", "recallByLabel", 1.0, ("binary",)),
    "f1": ("multiclass", "fMeasureByLabel", 1.0, ("binary",)),
    "precision_weighted": ("multiclass", "weightedPrecision", None, ("binary", "multiclass")),
    "recall_weighted": ("multiclass", "weightedRecall", None, ("binary", "multiclass")),
    "f1_weighted": ("multiclass", "f1", None, ("binary", "multiclass")),
    "roc_auc": ("binary", "areaUnderROC", None, ("binary",)),
    "pr_auc": ("binary", "areaUnderPR", None, ("binary",)),
    "log_loss": ("multiclass", "logLoss", None, ("binary", "multiclass")),
    "rmse": ("regression", "rmse", None, ("regression",)),
    "mae": ("regression", "mae", None, ("regression",)),
    "r2": ("regression", "r2", None, ("regression",)),
}


def _kind(dtype: Any) -> str:
    from pyspark.sql import types as T

    if isinstance(dtype, T.BooleanType | T.StringType):
        return "categorical"
    if isinstance(dtype, T.NumericType):
        return "numeric"
    if isinstance(dtype, T.DateType | T.TimestampType | T.TimestampNTZType):
        return _DATE_REASON
    if isinstance(dtype, T.BinaryType):
        return "a binary column"
    if isinstance(dtype, T.ArrayType | T.MapType | T.StructType):
        return "a nested column"
    return f"values of type {dtype.simpleString()} are not supported as features"


def _may_be_identifier(name: str, dtype: Any) -> bool:
    from pyspark.sql import types as T

    named = name.lower() == "id" or name.lower().endswith("_id") or name.endswith("Id")
    return named and isinstance(dtype, T.IntegralType | T.StringType)


def plan_spark_features(
    df: DataFrame,
    label: str,
    *,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> FeaturePlan:
    """Decide the feature columns of ``df`` (all but ``label`` unless ``features`` is given)."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType for f in df.schema.fields}
    missing = [c for c in [*(features or ()), *exclude] if c not in types]
    if missing:
        raise SchemaMismatch(
            f"column(s) {', '.join(map(repr, missing))} not in the data; "
            f"its columns: {', '.join(types)}"
        )
    if features is not None and label in features:
        raise InvalidArgument(f"the label {label!r} cannot also be a feature")
    explicit = features is not None
    candidates = list(features) if features is not None else [c for c in types if c != label]
    dropped: dict[str, str] = {}
    usable: list[str] = []
    for name in candidates:
        if name in exclude:
            dropped[name] = "excluded"
            continue
        kind = _kind(types[name])
        if kind not in ("numeric", "categorical"):
            if explicit:
                raise SchemaMismatch(f"feature {name!r} cannot be used: {kind}")
            dropped[name] = kind
        else:
            usable.append(name)
    ids = [n for n in usable if not explicit and _may_be_identifier(n, types[n])]
    aggs = [F.count(F.col(f"`{n}`")).alias(f"n{i}") for i, n in enumerate(usable)]
    aggs += [F.countDistinct(F.col(f"`{n}`")).alias(f"d{i}") for i, n in enumerate(ids)]
    stats = df.agg(*aggs).first().asDict() if aggs else {}  # type: ignore[union-attr]
    numeric: list[str] = []
    categorical: list[str] = []
    for i, name in enumerate(usable):
        present = int(stats.get(f"n{i}") or 0)
        if present == 0:
            if explicit:
                raise SchemaMismatch(f"feature {name!r} has no values")
            dropped[name] = "no values"
        elif name in ids and present > 1 and int(stats[f"d{ids.index(name)}"]) == present:
            dropped[name] = "an identifier (every value distinct)"
        elif _kind(types[name]) == "numeric":
            numeric.append(name)
        else:
            categorical.append(name)
    if not numeric and not categorical:
        reasons = "; ".join(f"{k}: {v}" for k, v in dropped.items()) or "no columns"
        raise SchemaMismatch(f"no usable feature columns besides the label {label!r} ({reasons})")
    used = set(numeric) | set(categorical)
    return FeaturePlan(
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        features=tuple(c for c in candidates if c in used),
        dropped=dropped,
    )


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def feature_stages(plan: FeaturePlan) -> list[Any]:
    """The preprocessing stages: cast, impute, index, one-hot, assemble, standardise."""
    from pyspark.ml.feature import (
        Imputer,
        OneHotEncoder,
        SQLTransformer,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )

    nums = [f"__ll_num_{i}" for i in range(len(plan.numeric))]
    cats = [f"__ll_cat_{i}" for i in range(len(plan.categorical))]
    casts = [f"CAST({_q(c)} AS DOUBLE) AS {n}" for c, n in zip(plan.numeric, nums, strict=True)]
    # StringIndexer takes strings and numbers, not booleans: every categorical becomes text.
    casts += [
        f"CAST({_q(c)} AS STRING) AS {n}" for c, n in zip(plan.categorical, cats, strict=True)
    ]
    stages: list[Any] = [SQLTransformer(statement=f"SELECT *, {', '.join(casts)} FROM __THIS__")]
    assembled: list[str] = []
    if nums:
        filled = [f"{n}_filled" for n in nums]
        stages.append(Imputer(inputCols=nums, outputCols=filled, strategy="median"))
        assembled += filled
    if cats:
        index = [f"{n}_index" for n in cats]
        onehot = [f"{n}_onehot" for n in cats]
        stages.append(StringIndexer(inputCols=cats, outputCols=index, handleInvalid="keep"))
        stages.append(OneHotEncoder(inputCols=index, outputCols=onehot, handleInvalid="keep"))
        assembled += onehot
    stages.append(VectorAssembler(inputCols=assembled, outputCol="__ll_assembled"))
    stages.append(StandardScaler(inputCol="__ll_assembled", outputCol=FEATURES, withMean=False))
    return stages


def available_metrics(task: str) -> tuple[str, ...]:
    """The metric names a Spark model of ``task`` is evaluated with (plus ``mape``)."""
    names = tuple(m for m, spec in _METRICS.items() if task in spec[3])
    return (*names, "mape") if task == "regression" else names


def spark_evaluator(metric: str, task: str) -> Any:
    """The Spark evaluator that ranks grid points by ``metric`` (``mape``: by ``rmse``)."""
    from pyspark.ml.evaluation import (
        BinaryClassificationEvaluator,
        MulticlassClassificationEvaluator,
        RegressionEvaluator,
    )

    kind, name, metric_label, _ = _METRICS.get(metric, _METRICS["rmse"])
    spark_name: Any = name  # pyspark's type hints omit some names it accepts (logLoss)
    if kind == "binary":
        return BinaryClassificationEvaluator(
            labelCol=LABEL, rawPredictionCol="probability", metricName=spark_name
        )
    if kind == "multiclass":
        evaluator = MulticlassClassificationEvaluator(
            labelCol=LABEL, probabilityCol="probability", metricName=spark_name
        )
        if metric_label is not None:
            evaluator.setMetricLabel(metric_label)
        return evaluator
    del task
    return RegressionEvaluator(labelCol=LABEL, metricName=spark_name)


def spark_metrics(predictions: DataFrame, task: str) -> dict[str, float]:
    """Every metric of ``task`` on scored rows (computed by Spark, cached while it runs)."""
    from pyspark.sql import functions as F

    scored = predictions.select(
        LABEL, "prediction", *(["probability"] if is_classification(task) else [])
    ).cache()
    try:
        out = {
            metric: float(spark_evaluator(metric, task).evaluate(scored))
            for metric in available_metrics(task)
            if metric != "mape"
        }
        if task == "regression":
            # scikit-learn's MAPE: |y - p| / max(|y|, eps), averaged.
            eps = 2.220446049250313e-16
            row = scored.select(
                F.avg(
                    F.abs(F.col(LABEL) - F.col("prediction"))
                    / F.greatest(F.abs(F.col(LABEL)), F.lit(eps))
                )
            ).first()
            out["mape"] = float(row[0]) if row is not None and row[0] is not None else float("nan")
        return out
    finally:
        scored.unpersist()
