"""Feature-aware models: an MLflow model that knows which features it needs and fetches them.

:func:`log_model` wraps a fitted model in an MLflow ``python_function`` model whose artifacts
are the model itself (saved with its own flavor: scikit-learn with skops) and
``feature_spec.json``: the training set's lookups (tables, keys, features, output names,
timestamp keys, lookback and defaults), the table versions it was trained on, where the
tables live, the columns the model consumes and their Arrow types. Scoring it needs only the
lookup keys (plus the label time column for point-in-time features):

* **Offline** (batch): :func:`lakeloom.features.scoring.score_batch` joins the features with
  the workspace's engine (``Engine.point_in_time_join``, latest table versions), then
  predicts. Loaded on its own (``mlflow.pyfunc.load_model(uri).predict(keys)``), the model does
  the same with the local engine at the tables' recorded locations.
* **Online** (real time): :meth:`FeatureAwareModel.features_online` reads the latest values
  from an online store (:func:`lakeloom.features.online.lookup`); a serving runtime attaches
  its store with :meth:`FeatureAwareModel.attach_online_store` and ``predict`` then uses it.

Input that already holds every feature column is scored as it is.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pyarrow as pa
from mlflow.pyfunc.model import PythonModel

from lakeloom.engines.arrow_input import to_arrow_input
from lakeloom.engines.base import Engine, PointInTimeLookup, TableRef
from lakeloom.errors import InvalidArgument, LakeloomError, SchemaMismatch, TrackingError
from lakeloom.features.training_set import ResolvedLookup, TrainingSet
from lakeloom.models.loading import load_model_dir
from lakeloom.tracking.runs import using_tracking
from lakeloom.tracking.store import TrackingConfig, client, ensure_experiment

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

__all__ = [
    "FEATURE_SPEC_FILE",
    "FeatureAwareModel",
    "FeatureSpec",
    "log_model",
]

FEATURE_SPEC_FILE = "feature_spec.json"
#: Key of the MLmodel metadata that marks a feature-aware model.
METADATA_KEY = "lakeloom_feature_aware"
#: Run and model-version tag listing the feature tables a model reads.
TABLES_TAG = "lakeloom.feature_tables"
_SPEC_FORMAT = 1


def _schema_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _schema_from(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@dataclass(frozen=True)
class FeatureSpec:
    """What a feature-aware model needs to fetch its features (``feature_spec.json``)."""

    #: The training set's spec (lookups with pinned versions, label, labels' source).
    training_set: dict[str, Any]
    #: The columns the wrapped model consumes, in order.
    model_columns: list[str]
    #: Where each feature table lived when the model was logged.
    table_uris: dict[str, str]
    #: Arrow types of the training set's columns.
    schema: pa.Schema

    @property
    def lookups(self) -> list[ResolvedLookup]:
        """The training set's lookups."""
        return [ResolvedLookup.from_dict(d) for d in self.training_set["lookups"]]

    @property
    def tables(self) -> list[str]:
        """The feature tables read, in lookup order (no repeats)."""
        return list(dict.fromkeys(lk.table for lk in self.lookups))

    @property
    def versions(self) -> dict[str, int]:
        """The table versions the model was trained on."""
        return {lk.table: lk.version for lk in self.lookups}

    @property
    def key_columns(self) -> list[str]:
        """Input columns scoring needs (the lookup keys)."""
        return list(dict.fromkeys(k for lk in self.lookups for k in lk.lookup.lookup_keys))

    @property
    def timestamp_columns(self) -> list[str]:
        """Input columns that make scoring point in time, when present."""
        found = (lk.lookup.timestamp_lookup_key for lk in self.lookups if lk.timestamp_key)
        return list(dict.fromkeys(t for t in found if t))

    @property
    def feature_columns(self) -> list[str]:
        """The looked-up columns the model consumes."""
        looked_up = {o for lk in self.lookups for o in lk.outputs}
        return [c for c in self.model_columns if c in looked_up]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "format": _SPEC_FORMAT,
            "lakeloom_version": _version("lakeloom"),
            "training_set": self.training_set,
            "model_columns": self.model_columns,
            "table_uris": self.table_uris,
            "schema": _schema_text(self.schema),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """The spec :meth:`to_dict` wrote."""
        if data.get("format") != _SPEC_FORMAT:
            raise InvalidArgument(
                f"feature spec format {data.get('format')!r} is not supported (expected "
                f"{_SPEC_FORMAT}); the model was logged by another lakeloom version"
            )
        return cls(
            training_set=dict(data["training_set"]),
            model_columns=list(data["model_columns"]),
            table_uris=dict(data["table_uris"]),
            schema=_schema_from(data["schema"]),
        )

    def engine_lookups(
        self,
        columns: Iterable[str],
        resolve: Callable[[str], TableRef],
        *,
        version: Callable[[str], int | None] = lambda _: None,
        unique: Callable[[str, int | None], bool] = lambda _t, _v: False,
    ) -> list[PointInTimeLookup]:
        """The joins that add the features to input with ``columns`` (latest versions).

        A lookup is point in time when the input has its label time column, else it takes
        each key's latest row.
        """
        present = set(columns)
        missing = [k for k in self.key_columns if k not in present]
        if missing:
            raise SchemaMismatch(
                f"the input has no column(s) {', '.join(map(repr, missing))}; this model looks "
                f"its features up by {', '.join(self.key_columns)}"
            )
        out = []
        for lk in self.lookups:
            ts = lk.lookup.timestamp_lookup_key
            as_of = lk.timestamp_key is not None and ts is not None and ts in present
            at = version(lk.table)
            out.append(
                PointInTimeLookup(
                    table=resolve(lk.table),
                    keys=lk.primary_keys,
                    features=lk.features,
                    spine_keys=lk.lookup.lookup_keys,
                    timestamp=lk.timestamp_key,
                    spine_timestamp=ts if as_of else None,
                    output_names=lk.outputs,
                    version=at,
                    lookback=lk.lookup.lookback if as_of else None,
                    default_values=dict(lk.default_values),
                    unique=unique(lk.table, at),
                )
            )
        return out


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _keys_only(data: pa.Table, spec: FeatureSpec) -> pa.Table:
    """The input without columns a lookup adds (they would collide with its outputs)."""
    looked_up = {o for lk in spec.lookups for o in lk.outputs}
    return data.drop_columns([c for c in data.column_names if c in looked_up])


def as_arrow(data: Any) -> pa.Table:
    """An Arrow table from pandas, polars, Arrow or Spark input."""
    got = to_arrow_input(data)
    return got.read_all() if isinstance(got, pa.RecordBatchReader) else got


class FeatureAwareModel(PythonModel):  # type: ignore[misc]
    """The ``python_function`` model :func:`log_model` logs; see the module docstring."""

    def __init__(self) -> None:
        self.spec: FeatureSpec | None = None
        self.model: Any = None
        self._online: Any = None

    # -- loading -----------------------------------------------------------------------
    def load_context(self, context: Any) -> None:
        """Read the feature spec and load the wrapped model with lakeloom's trust rules."""
        text = Path(context.artifacts["feature_spec"]).read_text(encoding="utf-8")
        self.spec = FeatureSpec.from_dict(json.loads(text))
        extra = (context.model_config or {}).get("trusted_types", [])
        self.model = load_model_dir(
            context.artifacts["model"], trusted_types=extra, what="the feature-aware model"
        )

    def _spec(self) -> FeatureSpec:
        if self.spec is None:
            raise InvalidArgument("the feature-aware model is not loaded (no feature spec)")
        return self.spec

    def attach_online_store(self, store: Any) -> None:
        """Make ``predict`` read features from ``store`` (an ``OnlineStore``)."""
        self._online = store

    # -- features ----------------------------------------------------------------------
    def has_features(self, columns: Iterable[str]) -> bool:
        """Whether input with ``columns`` already holds every feature the model consumes."""
        return set(self._spec().model_columns) <= set(columns)

    def features_offline(
        self,
        engine: Engine,
        data: Any,
        *,
        resolve: Callable[[str], TableRef] | None = None,
        version: Callable[[str], int | None] = lambda _: None,
        unique: Callable[[str, int | None], bool] = lambda _t, _v: False,
    ) -> pa.Table:
        """``data`` with the features joined by ``engine`` (default: the recorded tables)."""
        spec = self._spec()
        table = _keys_only(as_arrow(data), spec)
        if resolve is None:
            resolve = self._recorded_table
        lookups = spec.engine_lookups(table.column_names, resolve, version=version, unique=unique)
        return engine.to_arrow(engine.point_in_time_join(table, lookups))

    def _recorded_table(self, name: str) -> TableRef:
        uri = self._spec().table_uris.get(name)
        if uri is None:
            raise InvalidArgument(f"the model's feature spec has no location for table {name}")
        return TableRef(name=name, uri=uri)

    def features_online(self, store: Any, data: Any) -> pa.Table:
        """``data`` with each key's latest features from an online store.

        Keys that were never published (or expired) get the lookup's default values, or
        nulls; point-in-time columns are ignored (an online store holds the latest values).
        """
        from lakeloom.features.online import lookup

        spec = self._spec()
        table = _keys_only(as_arrow(data), spec)
        columns: dict[str, Any] = {c: table.column(c) for c in table.column_names}
        for lk in spec.lookups:
            key_cols = [table.column(k).to_pylist() for k in lk.lookup.lookup_keys]
            keys = (
                key_cols[0]
                if len(key_cols) == 1
                else [tuple(v) for v in zip(*key_cols, strict=True)]
            )
            rows = lookup(store, lk.table, keys, list(lk.features))
            for feature, name in zip(lk.features, lk.outputs, strict=True):
                typ = spec.schema.field(name).type if name in spec.schema.names else None
                default = lk.default_values.get(name)
                values = [default if r is None else r[feature] for r in rows]
                columns[name] = pa.array(values, type=typ)
        return pa.table(columns)

    # -- predicting --------------------------------------------------------------------
    def predict_features(self, data: Any) -> Any:
        """Predictions for input that holds the feature columns."""
        spec = self._spec()
        frame = data if isinstance(data, pd.DataFrame) else as_arrow(data).to_pandas()
        wanted = list(getattr(self.model, "feature_names_in_", spec.model_columns))
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise SchemaMismatch(
                f"the input lacks the model's column(s) {', '.join(map(repr, missing))}"
            )
        return self.model.predict(frame.loc[:, wanted])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Fetch the features the input lacks (online store if attached, else offline), predict."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else None
        columns = list(frame.columns) if frame is not None else as_arrow(model_input).column_names
        source = (params or {}).get("feature_source")
        if source is None:
            source = (
                "provided"
                if self.has_features(columns)
                else ("online" if self._online is not None else "offline")
            )
        if source == "provided":
            return np.asarray(self.predict_features(model_input))
        if source == "online":
            if self._online is None:
                raise InvalidArgument(
                    "feature_source='online' needs an online store: call "
                    "attach_online_store(store) on the unwrapped model first"
                )
            return np.asarray(
                self.predict_features(self.features_online(self._online, model_input))
            )
        if source != "offline":
            raise InvalidArgument(
                f"feature_source must be 'provided', 'offline' or 'online', got {source!r}"
            )
        from lakeloom.engines.local import LocalEngine

        return np.asarray(self.predict_features(self.features_offline(LocalEngine(), model_input)))


# -- logging -----------------------------------------------------------------------------
def _flavor_module(flavor: Any) -> Any:
    if isinstance(flavor, str):
        import importlib

        try:
            return importlib.import_module(f"mlflow.{flavor}")
        except ImportError:
            raise InvalidArgument(
                f"flavor {flavor!r} is not an MLflow flavor (e.g. 'sklearn', mlflow.sklearn)"
            ) from None
    if not hasattr(flavor, "save_model"):
        raise InvalidArgument(
            f"flavor must be an MLflow flavor module such as mlflow.sklearn, got {flavor!r}"
        )
    return flavor


def _save_inner(model: Any, flavor: Any, path: Path, kwargs: dict[str, Any]) -> list[str]:
    """Save the wrapped model; returns the pip requirements it needs."""
    module = _flavor_module(flavor)
    name = module.__name__.rsplit(".", 1)[-1]
    requirements = ["lakeloom", "mlflow", "pandas", "pyarrow", "duckdb", "deltalake"]
    if name == "sklearn":
        from lakeloom.models.trust import required_trusted_types

        kwargs.setdefault("serialization_format", "skops")
        kwargs.setdefault("skops_trusted_types", required_trusted_types(model))
        requirements += ["scikit-learn", "skops"]
        for package in ("xgboost", "lightgbm"):
            if type(model).__module__.startswith(package) or package in repr(model)[:2000]:
                requirements.append(package)
    pinned = [f"{p}=={v}" if (v := _version(p)) else p for p in dict.fromkeys(requirements)]
    # Given requirements spare MLflow its inference (a subprocess that imports the model).
    if "conda_env" not in kwargs and "extra_pip_requirements" not in kwargs:
        kwargs.setdefault("pip_requirements", pinned)
    module.save_model(model, str(path), **kwargs)
    return pinned


def model_columns(model: Any, training_set: TrainingSet) -> list[str]:
    """The training set columns the model consumes (its ``feature_names_in_`` if it has them)."""
    available = [c for c in training_set.columns if c != training_set.label]
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return available
    wanted = [str(n) for n in names]
    missing = [c for c in wanted if c not in available]
    if missing:
        raise SchemaMismatch(
            f"the model was fitted on column(s) {', '.join(map(repr, missing))} that the "
            f"training set does not have; its columns: {', '.join(available)}"
        )
    return wanted


def log_model(
    tracking: TrackingConfig,
    model: Any,
    name: str,
    *,
    flavor: Any,
    training_set: TrainingSet,
    table_uris: Mapping[str, str],
    registered_model_name: str | None = None,
    run_id: str | None = None,
    experiment: str | None = None,
    **flavor_kwargs: Any,
) -> ModelInfo:
    """Log ``model`` as a feature-aware MLflow model (see :meth:`FeatureStore.log_model`)."""
    if not isinstance(training_set, TrainingSet):
        raise InvalidArgument("training_set must be the TrainingSet the model was trained on")
    schema = training_set.to_arrow().schema
    spec = FeatureSpec(
        training_set=training_set.spec,
        model_columns=model_columns(model, training_set),
        table_uris={t: table_uris[t] for t in training_set.versions if t in table_uris},
        schema=schema,
    )
    tables = ",".join(spec.tables)
    c = client(tracking)
    with tempfile.TemporaryDirectory() as tmp:
        inner = Path(tmp) / "model"
        requirements = _save_inner(model, flavor, inner, dict(flavor_kwargs))
        spec_path = Path(tmp) / FEATURE_SPEC_FILE
        spec_path.write_text(json.dumps(spec.to_dict(), indent=2), encoding="utf-8")
        try:
            with (
                using_tracking(tracking),
                _run(tracking, run_id, experiment, name) as used,
                _no_signature_warning(),
            ):
                info = mlflow.pyfunc.log_model(
                    name=name,
                    python_model=str(Path(__file__).with_name("model_code.py")),
                    artifacts={"model": str(inner), "feature_spec": str(spec_path)},
                    pip_requirements=requirements,
                    registered_model_name=registered_model_name,
                    metadata={METADATA_KEY: True, "feature_tables": spec.tables},
                )
                c.set_tag(used, TABLES_TAG, tables)
                c.log_text(used, json.dumps(training_set.spec, indent=2), "training_set.json")
            version = getattr(info, "registered_model_version", None)
            if registered_model_name and version is not None:
                c.set_model_version_tag(registered_model_name, str(version), TABLES_TAG, tables)
        except LakeloomError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TrackingError(f"cannot log the feature-aware model {name!r}: {first}") from exc
    return info


class _DropSignatureHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to infer model signature")


@contextmanager
def _no_signature_warning() -> Iterator[None]:
    """Silence MLflow's warning that it cannot infer a signature from ``predict``'s type hints.

    A feature-aware model takes keys and, optionally, any of its features: its inputs are
    described by the feature spec logged with it, not by an MLflow signature.
    """
    logger = logging.getLogger("mlflow.pyfunc")
    hint = _DropSignatureHint()
    logger.addFilter(hint)
    try:
        yield
    finally:
        logger.removeFilter(hint)


@contextmanager
def _run(
    tracking: TrackingConfig, run_id: str | None, experiment: str | None, name: str
) -> Iterator[str]:
    """The run to log into: ``run_id``, else the active run, else a new one (ended after)."""
    active = mlflow.active_run()
    if active is not None and run_id in (None, active.info.run_id):
        yield str(active.info.run_id)
        return
    nested = active is not None
    if run_id is not None:
        with mlflow.start_run(run_id=run_id, nested=nested) as run:
            yield str(run.info.run_id)
        return
    experiment_id = ensure_experiment(tracking, experiment or "feature_models")
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"log {name}", nested=nested
    ) as run:
        yield str(run.info.run_id)


def is_feature_aware(loaded: Any) -> FeatureAwareModel | None:
    """The :class:`FeatureAwareModel` inside a loaded pyfunc model, or None."""
    try:
        inner = loaded.unwrap_python_model()
    except Exception:
        return None
    return inner if isinstance(inner, FeatureAwareModel) else None


def predictions_column(predictions: Any, rows: int) -> dict[str, pa.Array]:
    """Model output as named Arrow columns (one, or one per output column)."""
    if isinstance(predictions, pd.DataFrame):
        return {str(c): pa.array(predictions[c].to_numpy()) for c in predictions.columns}
    values = np.asarray(
        predictions.to_numpy() if isinstance(predictions, pd.Series) else predictions
    )
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or len(values) != rows:
        raise InvalidArgument(
            f"the model returned output of shape {values.shape} for {rows} input rows"
        )
    return {"": pa.array(values)}
