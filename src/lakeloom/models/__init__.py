"""Models: preprocessing, model families, metrics, evaluation, plots and safe loading.

Everything here works on in-memory data and fitted estimators; MLflow runs and the registry
live in :mod:`lakeloom.tracking`, training in :mod:`lakeloom.training`. Names load on first
use, so moving aliases or ranking runs never imports scikit-learn or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakeloom.models.data import FrameData, Lineage, TrainingData, to_pandas
    from lakeloom.models.estimators import LabelEncodedClassifier
    from lakeloom.models.evaluation import (
        Evaluation,
        evaluate,
        evaluation_plots,
        permutation_importances,
    )
    from lakeloom.models.families import FAMILIES, family, make_estimator, parse_models
    from lakeloom.models.labels import TASKS, Task, check_label, infer_task, is_classification
    from lakeloom.models.loading import load_model_dir
    from lakeloom.models.metric_names import (
        CLASSIFICATION_METRICS,
        REGRESSION_METRICS,
        default_metric,
        higher_is_better,
    )
    from lakeloom.models.preprocessing import FeaturePlan, build_model_pipeline, plan_features
    from lakeloom.models.trust import TRUSTED_TYPES, required_trusted_types

__all__ = [
    "CLASSIFICATION_METRICS",
    "FAMILIES",
    "REGRESSION_METRICS",
    "TASKS",
    "TRUSTED_TYPES",
    "Evaluation",
    "FeaturePlan",
    "FrameData",
    "LabelEncodedClassifier",
    "Lineage",
    "Task",
    "TrainingData",
    "build_model_pipeline",
    "check_label",
    "default_metric",
    "evaluate",
    "evaluation_plots",
    "family",
    "higher_is_better",
    "infer_task",
    "is_classification",
    "load_model_dir",
    "make_estimator",
    "parse_models",
    "permutation_importances",
    "plan_features",
    "required_trusted_types",
    "to_pandas",
]

_LAZY = {
    "FrameData": "data",
    "Lineage": "data",
    "TrainingData": "data",
    "to_pandas": "data",
    "LabelEncodedClassifier": "estimators",
    "Evaluation": "evaluation",
    "evaluate": "evaluation",
    "evaluation_plots": "evaluation",
    "permutation_importances": "evaluation",
    "FAMILIES": "families",
    "family": "families",
    "make_estimator": "families",
    "parse_models": "families",
    "TASKS": "labels",
    "Task": "labels",
    "check_label": "labels",
    "infer_task": "labels",
    "is_classification": "labels",
    "load_model_dir": "loading",
    "CLASSIFICATION_METRICS": "metric_names",
    "REGRESSION_METRICS": "metric_names",
    "default_metric": "metric_names",
    "higher_is_better": "metric_names",
    "FeaturePlan": "preprocessing",
    "build_model_pipeline": "preprocessing",
    "plan_features": "preprocessing",
    "TRUSTED_TYPES": "trust",
    "required_trusted_types": "trust",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"lakeloom.models.{module}"), name)
