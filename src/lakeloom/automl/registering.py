"""Registering an AutoML winner; moving an alias goes through the registry's promotion gate."""

from __future__ import annotations

from typing import Any

from lakeloom.automl.tracking import AUTOML_TYPES
from lakeloom.errors import InvalidArgument

__all__ = ["register_best"]


def register_best(
    automl: Any,
    name: str,
    alias: str | None = None,
    *,
    holdout: Any = None,
    min_improvement: float = 0.0,
    reason: str = "",
) -> dict[str, Any]:
    """Register ``automl``'s best model as a new version of ``name``.

    With ``alias``, the new version is promoted only if it beats the alias' current holder
    on ``holdout`` (a table name or a frame with the label): the registry's gate decides and
    records the decision. Returns what happened as a JSON-friendly dict.
    """
    from lakeloom.tracking.gate import run_gate
    from lakeloom.tracking.registry import Registry

    context = automl.context
    tables = getattr(context, "tables", None)
    if context is None or tables is None:
        raise InvalidArgument(
            "registering needs the workspace: create the AutoML estimator with context=ws"
        )
    if alias and holdout is None:
        raise InvalidArgument(
            f"moving alias {alias!r} goes through the promotion gate, which scores the models "
            "on held-out rows: pass holdout='schema.table' (or a frame with the label)"
        )
    registry = Registry(context.tracking, tables, getattr(context, "engine", None))
    version = registry.register(automl.best_run_id, name=name)
    out: dict[str, Any] = {
        "name": name,
        "version": int(version.version),
        "alias": alias,
        "promoted": None,
    }
    if alias:
        gate = run_gate(
            registry,
            name,
            candidate=int(version.version),
            holdout=holdout,
            alias=alias,
            label=automl.label_,
            min_improvement=min_improvement,
            reason=reason or f"AutoML {automl.best_model_name}",
            trusted_types=AUTOML_TYPES,
        )
        out["promoted"] = gate.promoted
        out["gate"] = gate.to_dict()
    return out
