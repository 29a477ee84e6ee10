"""The promotion gate: promote a candidate only if it beats the alias holder on a holdout.

Both models are scored on the same holdout table by the same code
(:func:`lakeloom.models.evaluation.evaluate`). The candidate is promoted when it is better by at
least ``min_improvement`` (in the metric's direction: lower is better for log loss, RMSE,
MAE, MAPE); with no current holder it is promoted if it passes the optional absolute
``threshold``. The decision (both metrics, the decision and its reason) is recorded as a
``gate`` MLflow run in the candidate's experiment, as tags on the candidate version and as a
row of the alias history (a refused gate is a row whose from- and to-version are equal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from lakeloom.errors import InvalidArgument, LakeloomError, TrackingError
from lakeloom.models.data import to_pandas
from lakeloom.models.evaluation import evaluate
from lakeloom.models.labels import check_label, infer_task, is_classification
from lakeloom.models.metric_names import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    check_metric,
    default_metric,
    higher_is_better,
)
from lakeloom.tracking.alias_history import AliasEvent
from lakeloom.tracking.runs import TAG_KIND
from lakeloom.tracking.store import ensure_experiment

if TYPE_CHECKING:
    from lakeloom.tracking.registry import Registry

__all__ = ["GATE_EXPERIMENT", "GateResult", "run_gate"]

#: Experiment for gate runs whose candidate has no run of its own.
GATE_EXPERIMENT = "lakeloom-gates"
_EPSILON = 1e-12


@dataclass(frozen=True)
class GateResult:
    """What the gate decided and why."""

    model: str
    alias: str
    candidate: int
    current: int | None
    metric: str
    candidate_value: float
    current_value: float | None
    min_improvement: float
    threshold: float | None
    promoted: bool
    reason: str
    holdout: str
    holdout_version: int | None
    holdout_rows: int
    run_id: str | None
    event: AliasEvent | None

    @property
    def decision(self) -> str:
        """``promoted`` or ``refused``."""
        return "promoted" if self.promoted else "refused"

    @property
    def exit_code(self) -> int:
        """0 promoted, 1 not promoted (the CLI's exit code)."""
        return 0 if self.promoted else 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "model": self.model,
            "alias": self.alias,
            "candidate": self.candidate,
            "current": self.current,
            "metric": self.metric,
            "candidate_value": self.candidate_value,
            "current_value": self.current_value,
            "min_improvement": self.min_improvement,
            "threshold": self.threshold,
            "decision": self.decision,
            "promoted": self.promoted,
            "reason": self.reason,
            "holdout": self.holdout,
            "holdout_version": self.holdout_version,
            "holdout_rows": self.holdout_rows,
            "run_id": self.run_id,
        }


def _load_holdout(registry: Registry, holdout: Any) -> tuple[pd.DataFrame, str, int | None]:
    if isinstance(holdout, str):
        tables, engine = registry.tables, registry.engine
        if engine is None:
            raise InvalidArgument(f"cannot read holdout table {holdout!r}: no engine")
        ref = tables.resolve(holdout)
        version = tables.version(ref.name)
        frame = engine.to_arrow(tables.read(ref.name, version=version)).to_pandas()
        return frame, ref.name, version
    return to_pandas(holdout), "dataframe", None


def _decide(
    metric: str,
    candidate: int,
    cand_value: float,
    current: int | None,
    cur_value: float | None,
    min_improvement: float,
    threshold: float | None,
) -> tuple[bool, str]:
    higher = higher_is_better(metric)
    if current is None:
        if threshold is None:
            return True, f"v{candidate} is the first version ({metric} {cand_value:.4f})"
        passes = cand_value >= threshold if higher else cand_value <= threshold
        word = ">=" if higher else "<="
        verdict = "passes" if passes else "fails"
        return passes, (
            f"v{candidate} is the first version: {metric} {cand_value:.4f} {verdict} "
            f"the threshold {word} {threshold:g}"
        )
    if current == candidate:
        return False, f"v{candidate} already holds the alias"
    assert cur_value is not None
    gain = cand_value - cur_value if higher else cur_value - cand_value
    if threshold is not None:
        passes = cand_value >= threshold if higher else cand_value <= threshold
        if not passes:
            return False, (
                f"v{candidate} {metric} {cand_value:.4f} fails the threshold {threshold:g}"
            )
    summary = (
        f"{metric} v{candidate} {cand_value:.4f} vs v{current} {cur_value:.4f} "
        f"(improvement {gain:+.4f}, needs {min_improvement:+.4f})"
    )
    if gain + _EPSILON >= min_improvement:
        return True, f"better: {summary}"
    return False, f"not better by the margin: {summary}"


def run_gate(
    registry: Registry,
    name: str,
    *,
    candidate: int | str,
    holdout: Any,
    alias: str = "production",
    metric: str | None = None,
    min_improvement: float = 0.0,
    threshold: float | None = None,
    label: str | None = None,
    reason: str = "",
    trusted_types: Iterable[str] = (),
    user: str | None = None,
) -> GateResult:
    """Score ``candidate`` and the current holder of ``alias`` on ``holdout``; promote if better.

    ``holdout`` is a table name or a frame with the label column. ``label`` defaults to the
    label the candidate was trained on. Returns the :class:`GateResult` (``promoted`` tells);
    raises on errors (unknown model, version, metric, table...), with nothing recorded.
    """
    registry._check_alias_name(alias)
    if isinstance(min_improvement, bool) or not isinstance(min_improvement, int | float):
        raise InvalidArgument(f"min_improvement must be a number, got {min_improvement!r}")
    if not math.isfinite(min_improvement) or min_improvement < 0:
        raise InvalidArgument(f"min_improvement must be >= 0, got {min_improvement}")
    if threshold is not None and not math.isfinite(float(threshold)):
        raise InvalidArgument(f"threshold must be a finite number, got {threshold!r}")
    cand = registry.version(name, candidate)
    label = label or cand.tags.get("lakeloom.label")
    if not label:
        raise InvalidArgument(
            f"{name} v{cand.version} does not record its label; pass label=... (--label)"
        )
    frame, holdout_name, holdout_version = _load_holdout(registry, holdout)
    source = f"holdout table {holdout_name}" if holdout_version is not None else "the holdout"
    y = check_label(frame, label, source)
    known = y.notna()
    frame, y = frame.loc[known], y.loc[known]
    task = cand.tags.get("lakeloom.task") or infer_task(y)
    available = CLASSIFICATION_METRICS if is_classification(task) else REGRESSION_METRICS
    metric = check_metric(
        metric or cand.tags.get("lakeloom.metric") or default_metric(task),
        available,
        f"for a {task} model",
    )
    X = frame.drop(columns=[label])
    current = registry.current(name, alias)

    def score(version: int) -> float:
        model = registry.load_model(name, version=version, trusted_types=trusted_types)
        # A scikit-learn model fitted on a frame knows its columns; give it exactly those.
        wanted = getattr(model, "feature_names_in_", None)
        columns = [str(c) for c in wanted] if wanted is not None else None
        if columns is not None and not set(columns) <= set(X.columns):
            missing = ", ".join(sorted(set(columns) - set(X.columns)))
            raise InvalidArgument(f"{source} lacks column(s) {name} v{version} needs: {missing}")
        try:
            inputs = X.loc[:, columns] if columns is not None else X
            values = evaluate(model, inputs, y.to_numpy(), task).metrics
        except LakeloomError:
            raise
        except Exception as exc:
            raise TrackingError(
                f"cannot score {name} v{version} on {source}: {exc}".splitlines()[0]
            ) from None
        if metric not in values:
            raise InvalidArgument(
                f"cannot compute {metric} for {name} v{version} on {source} (a probability "
                f"metric needs predict_proba and both classes); computed: {', '.join(values)}"
            )
        return values[metric]

    cand_value = score(cand.version)
    cur_value = score(current) if current is not None and current != cand.version else None
    if current == cand.version:
        cur_value = cand_value
    promoted, why = _decide(
        metric, cand.version, cand_value, current, cur_value, float(min_improvement), threshold
    )
    full_reason = f"{reason}: {why}" if reason else why
    details = {
        "decision": "promoted" if promoted else "refused",
        "metric": metric,
        "candidate_value": cand_value,
        "current": current,
        "current_value": cur_value,
        "min_improvement": float(min_improvement),
        "threshold": threshold,
        "holdout": holdout_name,
        "holdout_version": holdout_version,
    }
    c = registry.client
    experiment_id = _gate_experiment(registry, cand.run_id)
    run = c.create_run(
        experiment_id,
        run_name=f"gate {name} v{cand.version} -> {alias}",
        tags={
            TAG_KIND: "gate",
            "lakeloom.registered_model": name,
            "lakeloom.alias": alias,
            "lakeloom.gate.decision": details["decision"],
            "lakeloom.gate.reason": full_reason[:5000],
        },
    )
    run_id = run.info.run_id
    status = "FAILED"
    try:
        c.log_batch(run_id, params=_params(name, alias, cand.version, details))
        c.log_metric(run_id, f"candidate_{metric}", cand_value)
        if cur_value is not None:
            c.log_metric(run_id, f"current_{metric}", cur_value)
            c.log_metric(
                run_id,
                "improvement",
                cand_value - cur_value if higher_is_better(metric) else cur_value - cand_value,
            )
        event = registry.record_gate(
            name,
            alias,
            candidate=cand.version,
            expected_current=current,
            promote=promoted,
            reason=full_reason,
            details={**details, "gate_run_id": run_id},
            user=user,
        )
        prefix = f"lakeloom.gate.{alias}"
        c.set_model_version_tag(name, str(cand.version), f"{prefix}.decision", details["decision"])
        c.set_model_version_tag(name, str(cand.version), f"{prefix}.reason", full_reason[:5000])
        c.set_model_version_tag(name, str(cand.version), f"{prefix}.run_id", run_id)
        status = "FINISHED"
    except BaseException as exc:
        c.set_tag(run_id, "lakeloom.gate.decision", "error")
        c.set_tag(run_id, "lakeloom.error", (str(exc).splitlines() or [type(exc).__name__])[0])
        raise
    finally:
        c.set_terminated(run_id, status=status)
    return GateResult(
        model=name,
        alias=alias,
        candidate=cand.version,
        current=current,
        metric=metric,
        candidate_value=cand_value,
        current_value=cur_value,
        min_improvement=float(min_improvement),
        threshold=threshold,
        promoted=promoted,
        reason=full_reason,
        holdout=holdout_name,
        holdout_version=holdout_version,
        holdout_rows=len(frame),
        run_id=run_id,
        event=event,
    )


def _gate_experiment(registry: Registry, run_id: str | None) -> str:
    if run_id:
        try:
            return str(registry.client.get_run(run_id).info.experiment_id)
        except Exception:
            pass
    return ensure_experiment(registry.tracking, GATE_EXPERIMENT)


def _params(name: str, alias: str, candidate: int, details: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    values = {
        "model": name,
        "alias": alias,
        "candidate_version": candidate,
        **{k: v for k, v in details.items() if k not in ("candidate_value", "current_value")},
    }
    return [Param(k, str(v)) for k, v in values.items()]
