"""Pipelines: a TOML file of steps that ``lakeloom run FILE`` validates, then runs in order.

:func:`load_pipeline` parses and validates a file, :func:`run_pipeline` runs it and logs every
step in ``lakeloom.pipeline_runs``; :func:`step_kind` registers a new kind of step.
"""

from lakeloom.pipelines.runner import RunResult, StepFailed, run_pipeline
from lakeloom.pipelines.spec import PipelineSpec, StepSpec, load_pipeline, parse_param_overrides
from lakeloom.pipelines.steps import StepContext, TableVersion, registered_kinds, step_kind

__all__ = [
    "PipelineSpec",
    "RunResult",
    "StepContext",
    "StepFailed",
    "StepSpec",
    "TableVersion",
    "load_pipeline",
    "parse_param_overrides",
    "registered_kinds",
    "run_pipeline",
    "step_kind",
]
