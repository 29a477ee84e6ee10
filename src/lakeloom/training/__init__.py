"""Training: models trained on lakehouse data and tracked in MLflow (one run per model)."""

from lakeloom.training.sources import TableData
from lakeloom.training.train import (
    DEFAULT_MODELS,
    ModelRun,
    TrainingContext,
    TrainingResult,
    train,
)

__all__ = [
    "DEFAULT_MODELS",
    "ModelRun",
    "TableData",
    "TrainingContext",
    "TrainingResult",
    "train",
]
