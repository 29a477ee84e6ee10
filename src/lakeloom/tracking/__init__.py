"""MLflow tracking and registry for a workspace."""

from lakeloom.tracking.store import (
    TrackingConfig,
    activate,
    client,
    ensure_experiment,
    tracking_config,
)

__all__ = ["TrackingConfig", "activate", "client", "ensure_experiment", "tracking_config"]
