"""The feature store: versioned feature tables, point-in-time training sets, feature-aware
models and the online store. ``ws.features`` is the :class:`FeatureStore` of a workspace.
"""

from lakeloom.features.lookups import FeatureLookup
from lakeloom.features.store import FeatureContext, FeatureStore, FeatureTableDescription
from lakeloom.features.tables import FeatureTable, FeatureTableNotFound
from lakeloom.features.training_set import TrainingSet

__all__ = [
    "FeatureContext",
    "FeatureLookup",
    "FeatureStore",
    "FeatureTable",
    "FeatureTableDescription",
    "FeatureTableNotFound",
    "TrainingSet",
]
