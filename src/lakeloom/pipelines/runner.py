"""Run a validated pipeline's steps in order, logging each one in the run log.

A failing step stops the run: it is logged as failed, the steps after it as skipped, and
:class:`StepFailed` (a ``PipelineError``) names it. Scheduling is someone else's job (cron,
Airflow, Dagster call ``lakeloom run``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from lakeloom.errors import LakeloomError, PipelineError
from lakeloom.pipelines.runlog import StepRecord, append_records
from lakeloom.pipelines.spec import PipelineSpec, StepSpec
from lakeloom.pipelines.steps import StepContext, TableVersion, get_kind

if TYPE_CHECKING:
    from lakeloom.workspace import Workspace

__all__ = ["EventFn", "RunResult", "StepFailed", "error_message", "run_pipeline"]

#: Called with ``("start", record)`` before a step runs and ``("end", record)`` after it
#: (skipped steps only get ``"end"``).
EventFn = Callable[[Literal["start", "end"], StepRecord], None]


@dataclass
class RunResult:
    """The outcome of one run: a record per step of the pipeline."""

    run_id: str
    pipeline: str
    path: str
    started_at: datetime
    duration_s: float = 0.0
    records: list[StepRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return all(r.status != "failed" for r in self.records)

    @property
    def failed(self) -> StepRecord | None:
        """The step that failed, if any."""
        return next((r for r in self.records if r.status == "failed"), None)

    def outputs(self) -> list[TableVersion]:
        """Every table the run wrote, at the last version it made, in first-write order."""
        latest: dict[str, TableVersion] = {}
        for record in self.records:
            for out in record.outputs:
                latest[out.table] = out  # an update keeps the first insertion's place
        return list(latest.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "path": self.path,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "ok": self.ok,
            "steps": [r.to_dict() for r in self.records],
            "outputs": [t.to_dict() for t in self.outputs()],
        }


class StepFailed(PipelineError):
    """A step of a pipeline failed; ``result`` holds the run so far."""

    def __init__(self, message: str, result: RunResult, step: str) -> None:
        super().__init__(message)
        self.result = result
        self.step = step


def error_message(exc: BaseException) -> str:
    """One line for an exception: lakeloom's own message, else its type and first line."""
    if isinstance(exc, LakeloomError):
        return str(exc)
    text = str(exc).strip().splitlines()
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"unexpected {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _now() -> datetime:
    return datetime.now(UTC)


def _run_step(
    ws: Workspace, spec: PipelineSpec, step: StepSpec, record: StepRecord
) -> BaseException | None:
    ctx = StepContext(ws, spec.name, step.name, record.run_id)
    record.started_at = _now()
    start = time.perf_counter()
    failure: BaseException | None = None
    try:
        record.message = get_kind(step.kind).run(ctx, step.params)
        record.status = "succeeded"
    except BaseException as exc:  # logged, then re-raised by the caller
        failure = exc
        record.status = "failed"
        record.error = error_message(exc)
    record.duration_s = round(time.perf_counter() - start, 3)
    record.ended_at = _now()
    record.inputs = list(ctx.inputs)
    record.outputs = list(ctx.outputs)
    return failure


def run_pipeline(
    ws: Workspace,
    spec: PipelineSpec,
    *,
    from_step: str | None = None,
    only: str | None = None,
    on_event: EventFn | None = None,
) -> RunResult:
    """Run ``spec``'s steps (all, ``from_step`` onwards, or ``only`` one) in ``ws``.

    Raises :class:`StepFailed` after logging when a step fails.
    """
    selected = {s.name for s in spec.select(from_step=from_step, only=only)}
    result = RunResult(uuid.uuid4().hex, spec.name, spec.path, _now())
    start = time.perf_counter()
    pending: list[StepRecord] = []
    failure: BaseException | None = None
    for step in spec.steps:
        record = StepRecord(
            run_id=result.run_id,
            pipeline=spec.name,
            step=step.name,
            step_index=step.index,
            kind=step.kind,
            status="skipped",
        )
        result.records.append(record)
        pending.append(record)
        if step.engines and ws.settings.engine not in step.engines:
            record.message = (
                f"runs on the {' or '.join(step.engines)} engine; this run uses "
                f"{ws.settings.engine}"
            )
        if step.name not in selected or failure is not None or record.message:
            if on_event:
                on_event("end", record)
            continue
        record.status = "running"
        if on_event:
            on_event("start", record)
        failure = _run_step(ws, spec, step, record)
        append_records(ws.tables, pending)
        pending = []
        if on_event:
            on_event("end", record)
        if failure is not None and not isinstance(failure, Exception):
            raise failure  # KeyboardInterrupt, SystemExit: logged, not swallowed
    if pending:
        append_records(ws.tables, pending)
    result.duration_s = time.perf_counter() - start
    failed = result.failed
    if failure is not None and failed is not None:
        raise StepFailed(
            f"step {failed.step!r} ({failed.kind}) of pipeline {spec.name!r} failed: "
            f"{failed.error}",
            result,
            failed.step,
        ) from failure
    return result
