"""MLflow tracking and registry for a workspace: runs, registry, alias history, the gate.

The store wiring is imported eagerly (opening a workspace needs it); the rest loads on first
use, so ``import lakeloom`` stays fast (scikit-learn and matplotlib load only when needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lakeloom.tracking.store import (
    TrackingConfig,
    activate,
    client,
    ensure_experiment,
    tracking_config,
)

if TYPE_CHECKING:
    from lakeloom.tracking.alias_history import HISTORY_TABLE, AliasEvent, AliasHistory
    from lakeloom.tracking.gate import GateResult, run_gate
    from lakeloom.tracking.registry import (
        ModelDetails,
        ModelVersionInfo,
        RegisteredModelInfo,
        Registry,
        parse_model_uri,
    )
    from lakeloom.tracking.runs import Runs, RunSummary, using_tracking

__all__ = [
    "HISTORY_TABLE",
    "AliasEvent",
    "AliasHistory",
    "GateResult",
    "ModelDetails",
    "ModelVersionInfo",
    "RegisteredModelInfo",
    "Registry",
    "RunSummary",
    "Runs",
    "TrackingConfig",
    "activate",
    "client",
    "ensure_experiment",
    "parse_model_uri",
    "run_gate",
    "tracking_config",
    "using_tracking",
]

_LAZY = {
    "HISTORY_TABLE": "alias_history",
    "AliasEvent": "alias_history",
    "AliasHistory": "alias_history",
    "GateResult": "gate",
    "run_gate": "gate",
    "ModelDetails": "registry",
    "ModelVersionInfo": "registry",
    "RegisteredModelInfo": "registry",
    "Registry": "registry",
    "parse_model_uri": "registry",
    "Runs": "runs",
    "RunSummary": "runs",
    "using_tracking": "runs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"lakeloom.tracking.{module}"), name)
