"""The built-in step kinds. A new kind's module is imported here to register it."""

from lakeloom.pipelines import automl_step, ml_steps
from lakeloom.pipelines.kinds import (
    data,
    datasets,
    features,
    monitor,
    score,
    serve,
    spark_ml,
    sql,
)

__all__ = [
    "automl_step",
    "data",
    "datasets",
    "features",
    "ml_steps",
    "monitor",
    "score",
    "serve",
    "spark_ml",
    "sql",
]
