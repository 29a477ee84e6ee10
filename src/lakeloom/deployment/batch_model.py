"""The batch function of table-to-table scoring: one Arrow batch in, its predictions out.

:class:`BatchScorer` is what :meth:`Engine.map_batches` runs. It pickles (Spark ships it to
the executors with each task): the model travels as its zipped MLflow folder and is loaded
lazily, once per Python process, with lakeloom's trust rules. On the local engine the model
is loaded once, in the process, and never zipped.

A classifier (``predict_proba`` and ``classes_``) is scored once per batch: the probabilities
give the ``probability_<class>`` columns and the prediction is the most probable class, as
scikit-learn's own ``predict`` decides it. Other models give ``prediction`` only.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lakeloom.errors import InvalidArgument, LakeloomError, SchemaMismatch

__all__ = ["BatchScorer", "LoadedModel", "Provenance", "load_model_folder"]

#: Models loaded in this process (an executor's Python worker), by the digest of their folder.
_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


def load_model_folder(
    local_dir: str | Path, *, trusted_types: Sequence[str] = (), what: str = "the model"
) -> Any:
    """The model in an MLflow folder: the estimator itself when it can tell classes apart.

    scikit-learn models load with the trust rules; other flavors load as pyfunc models and
    are unwrapped to their native model when that is a scikit-learn-style classifier.
    """
    from lakeloom.models.loading import load_model_dir

    loaded = load_model_dir(local_dir, trusted_types=trusted_types, what=what)
    raw = None
    getter = getattr(loaded, "get_raw_model", None)
    if callable(getter):
        try:
            raw = getter()
        except Exception:
            raw = None
    if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        return raw
    return loaded


@dataclass(frozen=True)
class Provenance:
    """Who scored the rows: constant columns of every output row."""

    model_name: str | None
    model_version: int | None
    run_id: str | None
    scored_at: datetime

    def columns(self, rows: int) -> list[pa.Array]:
        """The four provenance columns for ``rows`` rows."""
        return [
            pa.repeat(pa.scalar(self.model_name, pa.string()), rows),
            pa.repeat(pa.scalar(self.model_version, pa.int64()), rows),
            pa.repeat(pa.scalar(self.run_id, pa.string()), rows),
            pa.repeat(pa.scalar(self.scored_at, pa.timestamp("us", tz="UTC")), rows),
        ]


PROVENANCE_FIELDS = [
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.int64()),
    pa.field("run_id", pa.string()),
    pa.field("scored_at", pa.timestamp("us", tz="UTC")),
]


@dataclass
class LoadedModel:
    """A model folder and, once loaded in this process, the model."""

    local_dir: str
    trusted_types: tuple[str, ...] = ()
    what: str = "the model"
    _model: Any = field(default=None, repr=False)
    _payload: bytes | None = field(default=None, repr=False)
    _digest: str | None = field(default=None, repr=False)

    @property
    def model(self) -> Any:
        """The loaded model (loaded on first use; once per process for a shipped folder)."""
        if self._model is None:
            if self._payload is not None:
                self._model = self._load_shipped()
            else:
                self._model = load_model_folder(
                    self.local_dir, trusted_types=self.trusted_types, what=self.what
                )
        return self._model

    def _load_shipped(self) -> Any:
        assert self._payload is not None and self._digest is not None
        with _CACHE_LOCK:
            if self._digest not in _CACHE:
                folder = tempfile.mkdtemp(prefix="lakeloom-model-")
                with zipfile.ZipFile(io.BytesIO(self._payload)) as zf:
                    zf.extractall(folder)
                _CACHE[self._digest] = load_model_folder(
                    folder, trusted_types=self.trusted_types, what=self.what
                )
            return _CACHE[self._digest]

    def __getstate__(self) -> dict[str, Any]:
        payload = self._payload
        if payload is None:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                root = Path(self.local_dir)
                for path in sorted(root.rglob("*")):
                    if path.is_file():
                        zf.write(path, path.relative_to(root).as_posix())
            payload = buf.getvalue()
        digest = self._digest or hashlib.sha256(payload).hexdigest()
        return {
            "local_dir": self.local_dir,
            "trusted_types": self.trusted_types,
            "what": self.what,
            "_model": None,
            "_payload": payload,
            "_digest": digest,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class BatchScorer:
    """Scores one Arrow batch: the key columns, predictions, probabilities and provenance."""

    model: LoadedModel
    #: The columns the model consumes, in order (None: every column but the keys).
    columns: list[str] | None
    keys: list[str]
    #: The classes, for models scored through ``predict_proba``; None: ``predict``.
    classes: list[Any] | None
    schema: pa.Schema
    provenance: Provenance

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Predict ``batch``'s rows."""
        model = self.model.model
        names = self.columns or [c for c in batch.schema.names if c not in self.keys]
        missing = [c for c in names if c not in batch.schema.names]
        if missing:
            raise SchemaMismatch(
                f"the input lacks the model's column(s) {', '.join(map(repr, missing))}"
            )
        n = batch.num_rows
        if n == 0:
            return pa.RecordBatch.from_pylist([], schema=self.schema)
        arrays: list[pa.Array] = [batch.column(k) for k in self.keys]
        pred_type = self.schema.field("prediction").type
        booster = _numeric_booster(model, batch.select(names))
        try:
            if booster is not None:
                # What LightGBM's scikit-learn wrapper does after turning the pandas frame
                # into a float matrix, with Arrow building the matrix instead.
                matrix = np.asarray(batch.select(names).to_tensor(null_to_nan=True))
                raw = np.asarray(booster.predict(matrix), dtype=np.float64)
                if self.classes is None:
                    arrays.append(_prediction_array(raw, n, pred_type))
                    arrays.extend(self.provenance.columns(n))
                    return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
                proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
            elif self.classes is not None:
                proba = np.asarray(model.predict_proba(batch.select(names).to_pandas()))
            if self.classes is not None:
                proba = np.asarray(proba, dtype=np.float64)
                if proba.ndim != 2 or proba.shape[1] != len(self.classes):
                    raise InvalidArgument(
                        f"the model returned probabilities of shape {proba.shape} for "
                        f"{len(self.classes)} classes"
                    )
                labels = pa.array(self.classes, type=pred_type)
                winner = pa.array(np.argmax(proba, axis=1))
                arrays.append(labels.take(winner))
                arrays.extend(pa.array(proba[:, i]) for i in range(len(self.classes)))
            else:
                frame = batch.select(names).to_pandas()
                arrays.append(_prediction_array(model.predict(frame), n, pred_type))
        except LakeloomError:
            raise
        except Exception as exc:
            raise InvalidArgument(f"the model cannot score this input: {_first_line(exc)}") from exc
        arrays.extend(self.provenance.columns(n))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


_NUMERIC = (pa.types.is_integer, pa.types.is_floating)


def _numeric_booster(model: Any, batch: pa.RecordBatch) -> Any:
    """LightGBM's booster inside a scikit-learn LightGBM model fed only numeric columns."""
    booster = (
        getattr(model, "booster_", None) if type(model).__module__.startswith("lightgbm") else None
    )
    if booster is None or getattr(booster, "pandas_categorical", None):
        return None
    if not all(any(check(f.type) for check in _NUMERIC) for f in batch.schema):
        return None
    if list(booster.feature_name()) != batch.schema.names:
        return None
    objective = str(getattr(model, "objective_", "") or "")
    if hasattr(model, "classes_") and objective not in ("binary", "multiclass", "multiclassova"):
        return None
    return booster


def _prediction_array(raw: Any, rows: int, typ: pa.DataType) -> pa.Array:
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        if raw.shape[1] != 1:
            raise InvalidArgument(
                f"the model returned {raw.shape[1]} columns; batch scoring writes one prediction"
            )
        raw = raw.iloc[:, 0]
    values = np.asarray(raw.to_numpy() if isinstance(raw, pd.Series) else raw)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or len(values) != rows:
        raise InvalidArgument(f"the model returned output of shape {values.shape} for {rows} rows")
    return pa.array(values).cast(typ)
