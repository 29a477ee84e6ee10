"""The baseline a monitor compares with: a table, or the training set of a registered model.

``models:/name@alias`` (or ``models:/name/3``) finds the data the model version was trained
on, as its run recorded it:

* a feature-aware model (:mod:`lakeloom.features.feature_model`) logs ``training_set.json``,
  the training set's spec with every table version it read: the set is rebuilt from it
  (the same rows, bit for bit);
* a model trained by :func:`lakeloom.training.train` logs its input table as an MLflow
  dataset input (a Delta source with the table's version): that table version is read in
  place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakeloom.errors import InvalidArgument, LakeloomError, ModelNotFound, TrackingError
from lakeloom.monitoring.profiles import Source

if TYPE_CHECKING:
    from lakeloom.monitoring.context import MonitorContext

__all__ = ["Baseline", "resolve_baseline"]


@dataclass(frozen=True)
class Baseline:
    """A resolved baseline: where its rows are, and what to leave out of the comparison."""

    source: Source
    #: What the user named (a table, a model URI).
    spec: str
    #: The model's label column (not compared), when the baseline is a model's training set.
    label: str | None = None
    #: Lookup keys of a feature-aware model (identifiers, not features).
    keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "baseline": self.spec,
            "table": self.source.name,
            "version": self.source.version,
            "label": self.label,
        }


def _table_baseline(ctx: MonitorContext, text: str) -> Baseline:
    name, _, version = text.partition("@")
    if version and not version.lstrip("v").isdigit():
        raise InvalidArgument(f"baseline {text!r}: write a version as TABLE@vN (e.g. ml.x@v3)")
    ref = ctx.tables.resolve(name)
    number = int(version.lstrip("v")) if version else ctx.tables.version(name)
    return Baseline(Source(ref, ref.name, number), text)


def resolve_baseline(ctx: MonitorContext, text: str) -> Baseline:
    """The baseline ``text`` names: ``schema.table[@vN]`` or ``models:/name@alias``."""
    if not text:
        raise InvalidArgument("the baseline is empty: name a table or models:/name@alias")
    if not text.startswith("models:/"):
        return _table_baseline(ctx, text)
    from lakeloom.tracking.registry import Registry

    registry = Registry(ctx.tracking, ctx.tables, ctx.engine)
    mv = registry.resolve(text)
    if not mv.run_id:
        raise ModelNotFound(f"{text} (v{mv.version}) has no run: its training data is unknown")
    client = registry.client
    try:
        run = client.get_run(mv.run_id)
    except Exception as exc:
        raise TrackingError(f"cannot read the run of {text}: {exc}") from None
    label = mv.tags.get("lakeloom.label") or run.data.tags.get("lakeloom.label")
    feature_spec = _training_set_spec(client, mv.run_id)
    if feature_spec is not None:
        from lakeloom.features.training_set import rebuild

        try:
            training_set = rebuild(ctx.tables, ctx.engine, feature_spec)
        except LakeloomError as exc:
            raise InvalidArgument(
                f"cannot rebuild the training set of {text} (v{mv.version}): {exc}"
            ) from None
        keys = tuple(
            dict.fromkeys(
                k
                for lk in feature_spec.get("lookups", [])
                for k in (lk.get("lookup", {}).get("lookup_keys") or [])
            )
        )
        return Baseline(
            Source(training_set.to_arrow(), f"training set of {mv.name} v{mv.version}"),
            text,
            label=feature_spec.get("label") or label,
            keys=keys,
        )
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        dataset = dataset_input.dataset
        try:
            source = json.loads(dataset.source or "{}")
        except json.JSONDecodeError:
            continue
        version = source.get("delta_table_version")
        if dataset.source_type == "delta_table" and version is not None and dataset.name:
            try:
                ref = ctx.tables.resolve(dataset.name)
            except LakeloomError:
                raise InvalidArgument(
                    f"{text} (v{mv.version}) was trained on table {dataset.name}, which no "
                    "longer exists in this workspace"
                ) from None
            return Baseline(Source(ref, ref.name, int(version)), text, label=label)
    raise InvalidArgument(
        f"{text} (v{mv.version}) records no training data (no training set, no Delta input); "
        "pass the training table as --baseline TABLE"
    )


def _training_set_spec(client: Any, run_id: str) -> dict[str, Any] | None:
    """The ``training_set.json`` a feature-aware model's run logged, if any."""
    try:
        names = {a.path for a in client.list_artifacts(run_id)}
    except Exception:
        return None
    if "training_set.json" not in names:
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "training_set.json", tmp)
        with open(path, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
            return data
