"""The feature store: versioned feature tables, point-in-time training sets, feature-aware
models and the online store. ``ws.features`` is the :class:`FeatureStore` of a workspace.

The names below are imported on first use: ``import lakeloom.features`` (as Spark workers
and the command line do) stays cheap, and ``from lakeloom.features import FeatureLookup``
loads only what that name needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where each public name lives.
_HOMES = {
    "FeatureContext": "lakeloom.features.store",
    "FeatureLookup": "lakeloom.features.lookups",
    "FeatureStore": "lakeloom.features.store",
    "FeatureTable": "lakeloom.features.tables",
    "FeatureTableDescription": "lakeloom.features.store",
    "FeatureTableNotFound": "lakeloom.features.tables",
    "TrainingSet": "lakeloom.features.training_set",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lakeloom.features' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
