"""What monitoring receives from the workspace: the lakehouse, the engine, the MLflow store."""

from __future__ import annotations

from dataclasses import dataclass

from lakeloom.engines.base import Engine
from lakeloom.lakehouse.tables import Tables
from lakeloom.tracking.store import TrackingConfig

__all__ = ["MonitorContext"]


@dataclass(frozen=True)
class MonitorContext:
    """The lakehouse tables, the compute engine and the tracking store of a workspace."""

    tables: Tables
    engine: Engine
    tracking: TrackingConfig
