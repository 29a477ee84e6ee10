"""Monitoring: drift, data quality, delayed-label performance and A/B analysis.

Statistics come from the engine's profiles (:meth:`lakeloom.engines.base.Engine.profile`),
never from rows pulled into memory. See ``docs/monitoring.md``.
"""

from lakeloom.monitoring.context import MonitorContext
from lakeloom.monitoring.drift import Finding
from lakeloom.monitoring.monitor import monitor
from lakeloom.monitoring.result import MonitorResult, inference_table
from lakeloom.monitoring.result_tables import drift_table, profile_table

__all__ = [
    "Finding",
    "MonitorContext",
    "MonitorResult",
    "drift_table",
    "inference_table",
    "monitor",
    "profile_table",
]
