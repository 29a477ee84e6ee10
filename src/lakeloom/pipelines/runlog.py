"""The pipeline run log: one row per step of every run, in ``lakeloom.pipeline_runs``.

``inputs`` and ``outputs`` are JSON lists of ``{"table": ..., "version": ...}``: the tables a
step read (at the version it saw) and wrote (at the version it made), so any output can be
traced back to the exact data it came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeloom.pipelines.steps import TableVersion

if TYPE_CHECKING:
    from lakeloom.lakehouse.tables import Tables
    from lakeloom.workspace import Workspace

__all__ = ["RUN_LOG_SCHEMA", "RUN_LOG_TABLE", "StepRecord", "append_records", "read_run"]

#: Where runs are logged (lakeloom's reserved schema).
RUN_LOG_TABLE = "lakeloom.pipeline_runs"

_TS = pa.timestamp("us", tz="UTC")

RUN_LOG_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("pipeline", pa.string()),
        pa.field("step", pa.string()),
        pa.field("step_index", pa.int32()),
        pa.field("kind", pa.string()),
        pa.field("started_at", _TS),
        pa.field("ended_at", _TS),
        pa.field("duration_s", pa.float64()),
        pa.field("status", pa.string()),
        pa.field("inputs", pa.string()),
        pa.field("outputs", pa.string()),
        pa.field("error", pa.string()),
    ]
)
"""Columns of ``lakeloom.pipeline_runs``."""


@dataclass
class StepRecord:
    """What happened to one step in one run.

    ``status`` is ``succeeded``, ``failed`` or ``skipped`` once logged (``running`` while the
    step runs, for progress display only).
    """

    run_id: str
    pipeline: str
    step: str
    step_index: int
    kind: str
    status: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    inputs: list[TableVersion] = field(default_factory=list)
    outputs: list[TableVersion] = field(default_factory=list)
    error: str | None = None
    #: The step's one-line result (shown, not logged).
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "step": self.step,
            "step_index": self.step_index,
            "kind": self.kind,
            "status": self.status,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_s": self.duration_s,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "error": self.error,
            "message": self.message,
        }


def _row(record: StepRecord) -> dict[str, Any]:
    row = record.to_dict()
    row.pop("message")
    row["started_at"] = record.started_at
    row["ended_at"] = record.ended_at
    row["inputs"] = json.dumps(row["inputs"])
    row["outputs"] = json.dumps(row["outputs"])
    return row


def append_records(tables: Tables, records: Sequence[StepRecord]) -> int:
    """Append ``records`` to the run log (created on first use); returns its new version."""
    data = pa.Table.from_pylist([_row(r) for r in records], schema=RUN_LOG_SCHEMA)
    return tables.write(RUN_LOG_TABLE, data, mode="append", system=True)


def _versions(text: str | None) -> list[TableVersion]:
    return [TableVersion(str(d["table"]), int(d["version"])) for d in json.loads(text or "[]")]


def read_run(ws: Workspace, run_id: str) -> list[StepRecord]:
    """The logged steps of run ``run_id``, in step order (empty when none)."""
    if not ws.tables.exists(RUN_LOG_TABLE):
        return []
    safe = run_id.replace("'", "''")
    frame = ws.tables.read(RUN_LOG_TABLE, filter=f"run_id = '{safe}'")
    rows = ws.engine.to_arrow(frame).to_pylist()
    records = [
        StepRecord(
            run_id=r["run_id"],
            pipeline=r["pipeline"],
            step=r["step"],
            step_index=r["step_index"],
            kind=r["kind"],
            status=r["status"],
            started_at=r["started_at"],
            ended_at=r["ended_at"],
            duration_s=r["duration_s"],
            inputs=_versions(r["inputs"]),
            outputs=_versions(r["outputs"]),
            error=r["error"],
        )
        for r in rows
    ]
    return sorted(records, key=lambda r: r.step_index)
