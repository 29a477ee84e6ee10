"""The built-in step kinds. A new kind's module is imported here to register it."""

from lakeloom.pipelines import automl_step, ml_steps
from lakeloom.pipelines.kinds import data, features, serve, spark_ml, sql

__all__ = ["automl_step", "data", "features", "ml_steps", "serve", "spark_ml", "sql"]
