"""Serving feature-aware models: requests carry entity keys, features come from the online store.

A model logged with ``ws.features.log_model`` (see :mod:`lakeloom.features.feature_model`)
is served by a :class:`FeatureAwareHandle`. Its input schema is:

* the lookup keys (required), typed as the online table's primary key (``long`` or
  ``string``);
* the columns the model consumes that no lookup provides (required, rare);
* the lookups' label-time columns (optional ``datetime``: accepted and logged; an online
  store holds the latest values, so they do not change what is looked up);
* every looked-up feature the model consumes (optional): a value sent in the request is
  used as it is, instead of the online value (an override, as for what-if scoring); a null
  means "look it up".

Per micro-batch, each lookup table is read once (:meth:`OnlineStore.get`: one ``IN`` query on
SQLite, one ``MGET`` on Redis) for all the batch's keys. A key that is not in the online store
(never published, or older than the table's TTL) gets the lookup's ``default_values``, else
nulls, exactly as in a training set or in offline scoring: the model imputes them, or, if
it cannot score nulls, the request gets a 400 that names the failure. Misses are counted
(``lakeloom_feature_lookup_misses_total`` in ``/metrics``).

The rows written to the inference table are the rows as the model scored them: keys plus the
feature values actually used, so that monitoring sees the model's real inputs.

Loading fails (and a running endpoint keeps its previous version) when a lookup table is not
published online or lacks a feature the model needs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeloom.deployment.schema import ColumnSpec, InputSchema
from lakeloom.errors import ModelLoadError

if TYPE_CHECKING:
    from lakeloom.deployment.models import LoadRequest
    from lakeloom.features.feature_model import FeatureAwareModel, FeatureSpec

__all__ = ["FeatureAwareHandle", "load_feature_aware", "mlflow_type"]

#: The MLmodel metadata key :func:`lakeloom.features.feature_model.log_model` sets.
_METADATA_KEY = "lakeloom_feature_aware"


def mlflow_type(arrow: pa.DataType) -> str | None:
    """The MLflow column type a request sends for Arrow type ``arrow`` (None: none fits)."""
    if pa.types.is_float64(arrow) or pa.types.is_float16(arrow):
        return "double"
    if pa.types.is_float32(arrow):
        return "float"
    if pa.types.is_int32(arrow) or pa.types.is_int16(arrow) or pa.types.is_int8(arrow):
        return "integer"
    if pa.types.is_integer(arrow):
        return "long"
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "string"
    if pa.types.is_timestamp(arrow) or pa.types.is_date(arrow):
        return "datetime"
    return None


@dataclass(frozen=True)
class _Lookup:
    """One lookup as served: where its keys sit in a request row, what it reads."""

    table: str
    key_positions: tuple[int, ...]
    features: tuple[str, ...]
    #: Per feature: its position in the request row (an override), or -1.
    positions: tuple[int, ...]
    defaults: tuple[Any, ...]


def _given(value: Any) -> bool:
    return value is not None and not (type(value) is float and math.isnan(value))


class FeatureAwareHandle:
    """A feature-aware model at the endpoint: keys in, online features looked up, scored."""

    def __init__(self, request: LoadRequest, open_store: Callable[[], Any]) -> None:
        from lakeloom.features.feature_model import FEATURE_SPEC_FILE, FeatureAwareModel
        from lakeloom.features.feature_model import FeatureSpec as Spec
        from lakeloom.models.loading import load_model_dir

        self.name = request.name
        self.version = request.version
        artifacts = request.local_dir / "artifacts"
        try:
            text = (artifacts / FEATURE_SPEC_FILE).read_text(encoding="utf-8")
        except OSError:
            raise ModelLoadError(
                f"model {request.name} version {request.version} is marked feature-aware but "
                f"has no {FEATURE_SPEC_FILE}"
            ) from None
        self.spec: FeatureSpec = Spec.from_dict(json.loads(text))
        self.model: FeatureAwareModel = FeatureAwareModel()
        self.model.spec = self.spec
        self.model.model = load_model_dir(
            artifacts / "model",
            trusted_types=request.trusted_types,
            allow_pickle=request.allow_pickle,
            what=f"model {request.name} version {request.version}",
        )
        self.store = open_store()
        #: Rows whose key one lookup did not find online (read by ``/metrics``).
        self.misses = 0
        self._schema = self._build_schema()
        self._lookups = self._plan_lookups()

    # -- the schema ----------------------------------------------------------------------
    def _published(self, table: str) -> Any:
        info = self.store.describe(table)
        if info is None:
            raise ModelLoadError(
                f"model {self.name} version {self.version} looks its features up in {table}, "
                f"which is not published online: run `lakeloom features publish {table}`"
            )
        return info.spec

    def _build_schema(self) -> InputSchema:
        spec = self.spec
        columns: dict[str, ColumnSpec] = {}
        for lk in spec.lookups:
            online = self._published(lk.table)
            missing = [f for f in lk.features if f not in online.feature_names]
            if missing:
                raise ModelLoadError(
                    f"online table {lk.table} lacks feature(s) {', '.join(missing)} that model "
                    f"{self.name} version {self.version} needs: publish them "
                    f"(`lakeloom features publish {lk.table}`)"
                )
            for spine, key in zip(lk.lookup.lookup_keys, lk.primary_keys, strict=True):
                key_kind = mlflow_type(online.schema.field(key).type) or "string"
                columns.setdefault(spine, ColumnSpec(spine, key_kind, True))
        looked_up = {o for lk in spec.lookups for o in lk.outputs}
        for name in spec.model_columns:
            if name in columns or name in looked_up:
                continue
            known = spec.schema.field(name).type if name in spec.schema.names else None
            kind = mlflow_type(known) if known is not None else None
            columns[name] = ColumnSpec(name, kind or "string", True)
        for name in spec.timestamp_columns:
            columns.setdefault(name, ColumnSpec(name, "datetime", False))
        for name in spec.feature_columns:
            field = spec.schema.field(name) if name in spec.schema.names else None
            kind = mlflow_type(field.type) if field is not None else None
            if kind is not None and name not in columns:
                columns[name] = ColumnSpec(name, kind, False)
        return InputSchema(list(columns.values()))

    def _plan_lookups(self) -> list[_Lookup]:
        index = self._schema.index
        out = []
        for lk in self.spec.lookups:
            out.append(
                _Lookup(
                    table=lk.table,
                    key_positions=tuple(index[k] for k in lk.lookup.lookup_keys),
                    features=tuple(lk.features),
                    positions=tuple(index.get(o, -1) for o in lk.outputs),
                    defaults=tuple(lk.default_values.get(o) for o in lk.outputs),
                )
            )
        return out

    @property
    def input_schema(self) -> InputSchema:
        """Keys (required), label times and feature overrides (optional)."""
        return self._schema

    def status(self) -> dict[str, Any]:
        """What ``/ready`` adds for this model: its lookup keys and tables."""
        return {
            "feature_aware": {
                "keys": self.spec.key_columns,
                "tables": self.spec.tables,
                "online_store": getattr(self.store, "kind", "?"),
            }
        }

    # -- scoring -------------------------------------------------------------------------
    def features(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``rows`` with every looked-up feature filled in (overrides kept)."""
        filled = [list(r) for r in rows]
        for lk in self._lookups:
            kp = lk.key_positions
            if len(kp) == 1:
                p = kp[0]
                keys: list[Any] = [r[p] for r in rows]
            else:
                keys = [tuple(r[p] for p in kp) for r in rows]
            found = self.store.get(lk.table, keys, list(lk.features))
            self.misses += sum(1 for f in found if f is None)
            for feature, pos, default in zip(lk.features, lk.positions, lk.defaults, strict=True):
                if pos < 0:
                    continue
                for row, hit in zip(filled, found, strict=True):
                    if _given(row[pos]):
                        continue
                    row[pos] = default if hit is None else hit[feature]
        return [tuple(r) for r in filled]

    def predict_enriched(
        self, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> tuple[list[Any], list[tuple[Any, ...]]]:
        """Predictions, and the rows as scored (features filled in) for the inference table."""
        from lakeloom.deployment.models import _predictions

        filled = self.features(rows)
        frame = self._frame(columns, filled)
        return _predictions(self.model.predict_features(frame), len(rows)), filled

    def predict(
        self, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> list[Any]:
        """Look the features up, then score."""
        return self.predict_enriched(columns, types, rows)[0]

    def _frame(self, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Any:
        """The model's input frame, typed as in the training set (Arrow's pandas conversion)."""
        where = {c: i for i, c in enumerate(columns)}
        schema = self.spec.schema
        arrays: dict[str, pa.Array] = {}
        for name in self.spec.model_columns:
            values = [r[where[name]] for r in rows]
            typ = schema.field(name).type if name in schema.names else None
            try:
                arrays[name] = pa.array(values, type=typ)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays[name] = pa.array(values)
        return pa.table(arrays).to_pandas()

    def warm_up(self) -> None:
        """Query every lookup table once and score a row of zeros (model errors ignored)."""
        row = tuple(
            {"string": "", "boolean": False, "datetime": None}.get(t, 0) for t in self._schema.types
        )
        filled = self.features([row])
        self.misses = 0
        blank = {"string": "", "boolean": False}
        filled = [
            tuple(
                blank.get(t, 0) if v is None and t != "datetime" else v
                for v, t in zip(filled[0], self._schema.types, strict=True)
            )
        ]
        try:
            self.model.predict_features(self._frame(self._schema.names, filled))
        except Exception:  # a row of zeros need not make sense to the model: warm is enough
            pass

    def __repr__(self) -> str:
        return f"FeatureAwareHandle({self.name!r}, version={self.version})"


def load_feature_aware(request: LoadRequest) -> FeatureAwareHandle | None:
    """The loader for feature-aware models (None for any other model)."""
    metadata = request.mlmodel.metadata or {}
    if not metadata.get(_METADATA_KEY):
        return None
    if request.online_store is None:
        raise ModelLoadError(
            f"model {request.name} version {request.version} is feature-aware, and this "
            "endpoint has no online store to look its features up in"
        )
    return FeatureAwareHandle(request, request.online_store)
