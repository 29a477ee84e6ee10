"""Find the churn pipeline, run it, and sum up the run from the run log."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeloom.errors import PipelineError
from lakeloom.pipelines.runlog import StepRecord, read_run
from lakeloom.pipelines.runner import EventFn, run_pipeline
from lakeloom.pipelines.spec import load_pipeline

if TYPE_CHECKING:
    from lakeloom.workspace import Workspace

__all__ = ["DemoModel", "DemoResult", "OutputTable", "pipeline_path", "run_demo"]

#: The held-out metrics the summary shows, when a model's run has them.
KEY_METRICS = ("roc_auc", "f1", "accuracy", "log_loss", "rmse", "mae", "r2")

#: Where the pipeline lives, in the repository and (force-included) in the wheel.
_RELATIVE = ("examples", "churn", "pipeline.toml")


def pipeline_path() -> Path:
    """The churn pipeline file: inside the installed package, else the repository's."""
    packaged = resources.files("lakeloom").joinpath(*_RELATIVE)
    if packaged.is_file():
        return Path(str(packaged))
    repo = Path(__file__).resolve().parents[3].joinpath(*_RELATIVE)
    if repo.is_file():
        return repo
    raise PipelineError(
        f"the demo pipeline {'/'.join(_RELATIVE)} is neither in the installed package nor "
        f"at {repo}; reinstall lakeloom"
    )


@dataclass(frozen=True)
class OutputTable:
    """A table the run wrote: its last version and its rows now."""

    table: str
    version: int
    rows: int | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {"table": self.table, "version": self.version, "rows": self.rows}


@dataclass(frozen=True)
class DemoModel:
    """A registered model after the run: its aliases and the key metrics of the version
    that ``production`` points at (else of its latest version)."""

    name: str
    latest_version: int | None
    aliases: dict[str, int]
    version: int | None
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "aliases": self.aliases,
            "version": self.version,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class DemoResult:
    """What ``lakeloom demo`` reports: the steps as logged, the tables made, where things are."""

    workspace: str
    pipeline: str
    run_id: str
    duration_s: float
    steps: list[StepRecord]
    tables: list[OutputTable]
    tracking_uri: str
    artifact_root: str | None
    next_commands: list[str] = field(default_factory=list)
    models: list[DemoModel] = field(default_factory=list)
    #: Reports the run wrote (HTML files under the workspace's ``reports/`` folder).
    reports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "workspace": self.workspace,
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "duration_s": round(self.duration_s, 3),
            "steps": [s.to_dict() for s in self.steps],
            "tables": [t.to_dict() for t in self.tables],
            "tracking_uri": self.tracking_uri,
            "artifact_root": self.artifact_root,
            "next_commands": self.next_commands,
            "models": [m.to_dict() for m in self.models],
            "reports": self.reports,
        }


def _tables(ws: Workspace, steps: list[StepRecord]) -> list[OutputTable]:
    latest: dict[str, int] = {}
    for step in steps:
        for out in step.outputs:
            latest[out.table] = out.version
    found = []
    for name, version in latest.items():
        rows = ws.tables.describe(name).rows if ws.tables.exists(name) else None
        found.append(OutputTable(name, version, rows))
    return found


def _models(ws: Workspace) -> list[DemoModel]:
    found = []
    for model in ws.registry.list():
        version = model.aliases.get("production", model.latest_version)
        metrics: dict[str, float] = {}
        if version is not None:
            run_metrics = ws.registry.version(model.name, version).metrics
            metrics = {m: round(run_metrics[m], 4) for m in KEY_METRICS if m in run_metrics}
        found.append(
            DemoModel(model.name, model.latest_version, dict(model.aliases), version, metrics)
        )
    return found


def _reports(ws: Workspace, since: float) -> list[str]:
    if not ws.storage.is_local:
        return []
    folder = Path(ws.root) / "reports"
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.glob("*.html") if p.stat().st_mtime >= since)


def run_demo(
    ws: Workspace,
    *,
    customers: int | None = None,
    seed: int | None = None,
    on_event: EventFn | None = None,
) -> DemoResult:
    """Run the churn pipeline in ``ws`` (``customers``/``seed`` override its params)."""
    overrides: dict[str, Any] = {}
    if customers is not None:
        overrides["customers"] = customers
    if seed is not None:
        overrides["seed"] = seed
    spec = load_pipeline(pipeline_path(), overrides)
    began = time.time()
    result = run_pipeline(ws, spec, on_event=on_event)
    steps = read_run(ws, result.run_id)
    root = shlex.quote(ws.root)
    tables = _tables(ws, steps)
    commands = [f"lakeloom tables list --workspace {root}"]
    if tables:
        commands.append(f"lakeloom tables show {tables[-1].table} --workspace {root}")
    models = _models(ws)
    commands += [
        f"lakeloom models history {shlex.quote(m.name)} --workspace {root}"
        for m in models
        if "production" in m.aliases
    ]
    commands += [
        f"lakeloom run {shlex.quote(spec.path)} --workspace {root} --only {spec.steps[-1].name}",
        f"lakeloom ui --workspace {root}",
    ]
    return DemoResult(
        workspace=ws.root,
        pipeline=spec.path,
        run_id=result.run_id,
        duration_s=result.duration_s,
        steps=steps,
        tables=tables,
        tracking_uri=ws.tracking.tracking_uri,
        artifact_root=ws.tracking.artifact_root,
        next_commands=commands,
        models=models,
        reports=_reports(ws, began - 1.0),
    )
