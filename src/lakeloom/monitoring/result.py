"""What a monitoring run returns (:class:`MonitorResult`), and the inference table's shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lakeloom.deployment.inference_log import META_COLUMNS
from lakeloom.monitoring.drift import Finding
from lakeloom.monitoring.ops import RouteStats
from lakeloom.monitoring.profiles import Profile

__all__ = ["INFERENCE_META", "MonitorResult", "inference_table"]

#: Columns of an inference table that describe the request, not the model's input.
INFERENCE_META = META_COLUMNS
_INFERENCE_PREFIX = "lakeloom.inference_"


def inference_table(endpoint: str) -> str:
    """The inference table of endpoint ``endpoint``."""
    return _INFERENCE_PREFIX + endpoint


@dataclass
class MonitorResult:
    """What a monitoring run found, where it wrote it, and the verdict."""

    name: str
    run_id: str
    run_time: datetime
    source: str
    baseline: dict[str, Any]
    window_start: datetime | None
    window_end: datetime | None
    rows: dict[str, int]
    findings: list[Finding]
    routes: list[RouteStats] = field(default_factory=list)
    performance: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    report: str | None = None
    #: Plots and figures the report is drawn from (not serialised).
    profiles: dict[str, dict[str | None, Profile]] = field(default_factory=dict, repr=False)
    edges: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    kinds: dict[str, str] = field(default_factory=dict, repr=False)
    webhook_status: int | None = None

    @property
    def drifted(self) -> list[Finding]:
        """Primary findings that crossed their threshold (drift and data quality)."""
        return [f for f in self.findings if f.primary and f.drifted]

    @property
    def drift_found(self) -> bool:
        """Whether anything drifted or a data-quality check alarmed."""
        return bool(self.drifted)

    @property
    def exit_code(self) -> int:
        """1 when drift was found (``--fail-on-drift``), else 0."""
        return 1 if self.drift_found else 0

    def most_drifted(self, n: int = 5) -> list[Finding]:
        """Primary drift findings against the baseline (features, prediction), worst first.

        The prediction has no baseline unless the baseline holds a ``prediction`` column.
        """
        ranked = [
            f
            for f in self.findings
            if f.primary
            and f.kind in ("feature", "prediction")
            and f.slice is None
            and f.reference == "baseline"
        ]
        ranked.sort(key=lambda f: (not f.drifted, -f.score, f.column))
        return ranked[:n]

    def summary(self) -> dict[str, Any]:
        """A short JSON-friendly summary (what the webhook posts)."""
        return {
            "monitor": self.name,
            "run_id": self.run_id,
            "run_time": self.run_time.isoformat(),
            "source": self.source,
            "baseline": self.baseline.get("baseline"),
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "drift_found": self.drift_found,
            "drifted": [
                {
                    "column": f.column,
                    "kind": f.kind,
                    "reference": f.reference,
                    "method": f.method,
                    "statistic": f.statistic,
                    "slice": f.slice,
                }
                for f in self.drifted
            ],
            "most_drifted": [f.to_dict() for f in self.most_drifted()],
            "report": self.report,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-friendly."""
        return {
            **self.summary(),
            "baseline": self.baseline,
            "rows": self.rows,
            "findings": [f.to_dict() for f in self.findings],
            "routes": [r.to_dict() for r in self.routes],
            "performance": self.performance,
            "tables": self.tables,
            "webhook_status": self.webhook_status,
        }
