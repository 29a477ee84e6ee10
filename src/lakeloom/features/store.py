"""``ws.features``: the feature store facade (feature tables, training sets, models, online).

>>> fs = ws.features
>>> fs.create_table("features.customer_rfm", primary_keys="customer_id",
...                 timestamp_key="ts", df=rfm)                             # doctest: +SKIP
>>> ts = fs.create_training_set(df=labels, label="churned", feature_lookups=[
...     FeatureLookup("features.customer_rfm", "customer_id", timestamp_lookup_key="label_date"),
... ])                                                                       # doctest: +SKIP
>>> ws.train(ts, label="churned", experiment="churn")                        # doctest: +SKIP
>>> fs.log_model(model, "model", flavor=mlflow.sklearn, training_set=ts,
...              registered_model_name="churn")                             # doctest: +SKIP
>>> ws.score_batch("models:/churn/1", labels[["customer_id", "label_date"]])  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeloom.engines.base import Engine, Frame
from lakeloom.errors import InvalidArgument, TrackingError
from lakeloom.features.lookups import FeatureLookup
from lakeloom.features.tables import FeatureTable, FeatureTables, WriteMode
from lakeloom.features.training_set import TrainingSet, rebuild, resolve_lookups
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables
from lakeloom.settings import Settings
from lakeloom.tracking.store import TrackingConfig, client

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

__all__ = ["FeatureContext", "FeatureStore", "FeatureTableDescription"]


@dataclass(frozen=True)
class FeatureContext:
    """What the feature store needs from the workspace (never the workspace itself)."""

    tables: Tables
    engine: Engine
    tracking: TrackingConfig
    settings: Settings
    storage: Storage


@dataclass(frozen=True)
class FeatureTableDescription:
    """What :meth:`FeatureStore.describe` tells about a feature table."""

    table: FeatureTable
    schema: pa.Schema
    features: list[str]
    rows: int
    version: int
    versions: int
    #: The newest timestamp key value (None without a timestamp key).
    freshness: datetime | None
    last_change: datetime | None
    snapshots: dict[str, int]
    #: Registered model versions logged with a lookup on this table ("name/3").
    used_by: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            **self.table.to_dict(),
            "schema": [{"name": f.name, "type": str(f.type)} for f in self.schema],
            "features": self.features,
            "rows": self.rows,
            "version": self.version,
            "versions": self.versions,
            "freshness": self.freshness.isoformat() if self.freshness else None,
            "last_change": self.last_change.isoformat() if self.last_change else None,
            "snapshots": self.snapshots,
            "used_by": self.used_by,
        }


class FeatureStore:
    """Versioned feature tables, point-in-time training sets, feature-aware models."""

    def __init__(self, ctx: FeatureContext) -> None:
        self._ctx = ctx
        self._tables = FeatureTables(ctx.tables, ctx.engine)
        #: Names a caller used -> the feature table's name, checked once (the online hot path
        #: must not read Delta metadata per call); refreshed by publish_table and drop_table.
        self._online_names: dict[str, str] = {}
        #: Model URIs a caller used -> the lookups of their feature spec (loaded once).
        self._online_models: dict[str, list[Any]] = {}

    # -- feature tables ----------------------------------------------------------------
    def create_table(
        self,
        name: str,
        primary_keys: str | Sequence[str],
        timestamp_key: str | None = None,
        df: Any = None,
        *,
        schema: pa.Schema | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        partition_columns: Sequence[str] | None = None,
    ) -> FeatureTable:
        """Create a feature table from ``df`` (or empty, from ``schema``).

        ``primary_keys`` plus ``timestamp_key`` identify a row: duplicates, nulls in them,
        or a timestamp key that is no timestamp or date are refused and nothing is written.
        Called without ``df`` and ``schema`` on an existing table, makes it a feature table.
        """
        return self._tables.create(
            name,
            primary_keys,
            timestamp_key=timestamp_key,
            df=df,
            schema=schema,
            description=description,
            tags=tags,
            partition_columns=partition_columns,
        )

    def write_table(self, name: str, df: Any, mode: WriteMode = "merge") -> int:
        """Write rows: ``merge`` upserts on the keys and timestamp key, ``overwrite`` replaces.

        Returns the new Delta version.
        """
        return self._tables.write(name, df, mode=mode)

    def read_table(
        self, name: str, version: int | None = None, timestamp: datetime | str | None = None
    ) -> Frame:
        """The feature table's rows (at a ``version`` or ``timestamp``: time travel)."""
        table = self._tables.get(name)
        return self._ctx.tables.read(table.name, version=version, timestamp=timestamp)

    def get_table(self, name: str) -> FeatureTable:
        """The definition (keys, timestamp key, description, tags) of ``name``."""
        return self._tables.get(name)

    def list_tables(self) -> list[FeatureTable]:
        """Every feature table, sorted by name."""
        return self._tables.list()

    def update_table(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> FeatureTable:
        """Change a feature table's description or tags."""
        return self._tables.update(name, description=description, tags=tags)

    def describe(self, name: str) -> FeatureTableDescription:
        """Schema, keys, rows, versions, freshness, snapshots and the models that use it."""
        table = self._tables.get(name)
        info = self._ctx.tables.describe(table.name)
        history = self._ctx.tables.history(table.name)
        return FeatureTableDescription(
            table=table,
            schema=info.schema,
            features=table.features(info.schema),
            rows=info.rows,
            version=info.version,
            versions=len(history),
            freshness=self._tables.freshness(table.name),
            last_change=info.last_change,
            snapshots=info.tags,
            used_by=self._models_using(table.name),
        )

    def history(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The table's versions, newest first (every write is a version)."""
        table = self._tables.get(name)
        return self._ctx.tables.history(table.name, limit)

    def snapshot(self, name: str, tag: str, version: int | None = None) -> int:
        """Name a version (default: the latest): vacuum never deletes a tagged version."""
        table = self._tables.get(name)
        return self._ctx.tables.tag(table.name, tag, version)

    def drop_table(self, name: str) -> None:
        """Delete the feature table and all its versions."""
        self._tables.drop(name)
        self._online_names.clear()

    def _models_using(self, name: str) -> list[str]:
        from lakeloom.features.feature_model import TABLES_TAG

        try:
            found = client(self._ctx.tracking).search_model_versions(
                filter_string=f"tags.`{TABLES_TAG}` LIKE '%{name}%'"
            )
        except Exception:
            return []
        out = []
        for mv in found:
            tables = str((mv.tags or {}).get(TABLES_TAG, "")).split(",")
            if name in tables:
                out.append(f"{mv.name}/{mv.version}")
        return sorted(out)

    # -- training sets -----------------------------------------------------------------
    def create_training_set(
        self,
        df: Any,
        feature_lookups: Sequence[FeatureLookup],
        label: str | None,
        exclude_columns: Sequence[str] = (),
        *,
        write_time_cutoff: bool = False,
    ) -> TrainingSet:
        """Label rows (``df``: a frame or a table name) with their point-in-time features.

        Every table's version is pinned now; errors (unknown tables or features, missing or
        mistyped key and time columns) are raised now, before any join runs. See
        :mod:`lakeloom.features.training_set` for the semantics and ``write_time_cutoff``.
        """
        engine = self._ctx.engine
        if isinstance(df, str):
            name = self._ctx.tables.resolve(df).name
            version = self._ctx.tables.version(name)
            labels = engine.to_arrow(self._ctx.tables.read(name, version=version))
            source: dict[str, Any] = {"kind": "table", "name": name, "version": version}
        else:
            labels = engine.to_arrow(engine.from_input(df))
            source = {"kind": "frame", "rows": labels.num_rows}
        lookups = resolve_lookups(self._tables, list(feature_lookups))
        return TrainingSet(
            tables=self._ctx.tables,
            engine=engine,
            labels=labels,
            label_source=source,
            lookups=lookups,
            label=label,
            exclude_columns=exclude_columns,
            write_time_cutoff=write_time_cutoff,
        )

    def rebuild_training_set(self, source: Any, *, labels: Any = None) -> TrainingSet:
        """The training set ``source`` describes, from the same table versions, bit for bit.

        ``source``: a :class:`TrainingSet`, its ``spec`` (a dict or a JSON file), or the URI
        of a feature-aware model (``models:/churn/3``). Labels that came from a DataFrame
        must be passed again as ``labels``.
        """
        spec = self._spec_of(source)
        return rebuild(self._ctx.tables, self._ctx.engine, spec, labels=labels)

    def _spec_of(self, source: Any) -> dict[str, Any]:
        if isinstance(source, TrainingSet):
            return source.spec
        if isinstance(source, Mapping):
            return dict(source)
        if isinstance(source, Path) or (
            isinstance(source, str) and source.endswith(".json") and ":/" not in source
        ):
            return dict(json.loads(Path(source).read_text(encoding="utf-8")))
        if isinstance(source, str):
            return self._model_spec(source).training_set
        raise InvalidArgument(
            "source must be a TrainingSet, its spec, a spec JSON file or a model URI, got "
            f"{type(source).__name__}"
        )

    def _model_spec(self, uri: str) -> Any:
        import tempfile

        import mlflow.artifacts

        from lakeloom.features.feature_model import FEATURE_SPEC_FILE, FeatureSpec
        from lakeloom.tracking.runs import using_tracking

        tracking = self._ctx.tracking
        uri = uri if ":/" in uri else f"models:/{uri}"
        try:
            with tempfile.TemporaryDirectory() as tmp, using_tracking(tracking):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri,
                    dst_path=tmp,
                    tracking_uri=tracking.tracking_uri,
                    registry_uri=tracking.registry_uri,
                )
                text = (Path(local) / "artifacts" / FEATURE_SPEC_FILE).read_text("utf-8")
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TrackingError(
                f"cannot read the feature spec of {uri} (is it a feature-aware model logged "
                f"with fs.log_model?): {first}"
            ) from None
        return FeatureSpec.from_dict(json.loads(text))

    # -- feature-aware models ----------------------------------------------------------
    def log_model(
        self,
        model: Any,
        name: str = "model",
        *,
        flavor: Any,
        training_set: TrainingSet,
        registered_model_name: str | None = None,
        run_id: str | None = None,
        experiment: str | None = None,
        **flavor_kwargs: Any,
    ) -> ModelInfo:
        """Log ``model`` with its feature lookups, so that scoring needs only the keys.

        ``flavor`` saves the model itself (``mlflow.sklearn`` or ``"sklearn"``: skops).
        The run is ``run_id``, else the active run, else a new run in ``experiment``
        (default ``feature_models``). The lookups, the table versions read and the columns
        the model consumes are stored with it (``feature_spec.json``); the registered
        version is tagged with the feature tables it reads (``fs.describe`` lists it).
        """
        from lakeloom.features.feature_model import log_model

        uris = {
            t: self._ctx.tables.resolve(t).uri
            for t in training_set.versions
            if self._ctx.tables.exists(t)
        }
        return log_model(
            self._ctx.tracking,
            model,
            name,
            flavor=flavor,
            training_set=training_set,
            table_uris=uris,
            registered_model_name=registered_model_name,
            run_id=run_id,
            experiment=experiment,
            **flavor_kwargs,
        )

    def score_batch(self, model: Any, df: Any, **kwargs: Any) -> Frame:
        """Score ``df`` with ``model`` (see :func:`lakeloom.features.scoring.score_batch`)."""
        from lakeloom.features.scoring import ScoringContext, score_batch

        online = self.online_store if kwargs.get("feature_source") == "online" else None
        ctx = ScoringContext(self._ctx.tracking, self._ctx.tables, self._ctx.engine, online)
        return score_batch(ctx, model, df, **kwargs)

    # -- online store ------------------------------------------------------------------
    @cached_property
    def online_store(self) -> Any:
        """The workspace's online store (``[online_store]`` in ``lakeloom.toml``)."""
        from lakeloom.features.online import open_online_store

        return open_online_store(self._ctx.settings.online_store, self._ctx.storage)

    def publish_table(
        self,
        name: str,
        *,
        features: Sequence[str] | None = None,
        mode: str = "snapshot",
        ttl: Any = None,
    ) -> Any:
        """Copy each key's latest row of feature table ``name`` to the online store."""
        from lakeloom.features.online import publish

        table = self._tables.get(name)
        self._online_names.clear()
        return publish(
            self.online_store,
            self._ctx.engine,
            self._ctx.tables.resolve(table.name),
            name=table.name,
            primary_keys=list(table.primary_keys),
            timestamp_key=table.timestamp_key,
            features=features,
            mode=mode,  # type: ignore[arg-type]
            ttl=ttl,
        )

    def _model_online_features(
        self, uri: str, keys: Iterable[Any], features: Sequence[str] | None
    ) -> list[dict[str, Any] | None]:
        lookups = self._online_models.get(uri)
        if lookups is None:
            from lakeloom.features.feature_model import is_feature_aware
            from lakeloom.features.scoring import load_scoring_model

            aware = is_feature_aware(load_scoring_model(self._ctx.tracking, uri))
            if aware is None or aware.spec is None:
                raise InvalidArgument(
                    f"model {uri} is not feature-aware (logged with fs.log_model): it has no "
                    "feature lookups; pass a feature table's name instead"
                )
            lookups = aware.spec.lookups
            self._online_models[uri] = lookups
        key_columns = list(dict.fromkeys(k for lk in lookups for k in lk.lookup.lookup_keys))
        rows: list[dict[str, Any]] = []
        for key in keys:
            if isinstance(key, Mapping):
                row = {k: key[k] for k in key_columns if k in key}
            else:
                values = key if isinstance(key, tuple) else (key,)
                if len(values) != len(key_columns):
                    raise InvalidArgument(
                        f"model {uri} looks features up by {', '.join(key_columns)}: pass "
                        f"{len(key_columns)} value(s) per key, or a mapping of those columns"
                    )
                row = dict(zip(key_columns, values, strict=True))
            missing = [k for k in key_columns if k not in row]
            if missing:
                raise InvalidArgument(
                    f"key {key!r} lacks column(s) {', '.join(missing)} that model {uri} "
                    "looks its features up by"
                )
            rows.append(row)
        found = [False] * len(rows)
        for lk in lookups:
            wanted = [
                (f, o)
                for f, o in zip(lk.features, lk.outputs, strict=True)
                if features is None or o in features
            ]
            if not wanted:
                continue
            table_keys = [tuple(r[k] for k in lk.lookup.lookup_keys) for r in rows]
            got = self.online_store.get(
                lk.table,
                [k[0] if len(k) == 1 else k for k in table_keys],
                [f for f, _ in wanted],
            )
            for i, (row, hit) in enumerate(zip(rows, got, strict=True)):
                found[i] = found[i] or hit is not None
                for feature, output in wanted:
                    default = lk.default_values.get(output, lk.default_values.get(feature))
                    row[output] = default if hit is None else hit.get(feature)
        return [row if hit else None for row, hit in zip(rows, found, strict=True)]

    def get_online_features(
        self, name: str, keys: Iterable[Any], features: Sequence[str] | None = None
    ) -> list[dict[str, Any] | None]:
        """The online features of each key, in order (None: a key never published, or older
        than the table's TTL).

        ``name`` is a feature table, or the URI of a feature-aware model
        (``models:/churn_by_key/1``): then each result holds the model's key columns and every
        feature it looks up, under the names it was trained with (``rename_outputs``), with
        the lookups' ``default_values`` for keys a table has not published (None: no table
        knew the key).

        Each result holds the key columns, then ``features`` (default: all published ones).
        Keys are scalars for a one-column key, tuples in key order, or mappings. The first
        call for a name checks that it is a feature table; later calls go straight to the
        online store (one primary-key query, or one ``MGET`` on Redis).

        >>> ws.features.get_online_features("features.customer", [42, 7], ["age"])  # doctest: +SKIP
        [{'customer_id': 42, 'age': 31}, None]
        """
        if name.startswith(("models:/", "runs:/")):
            return self._model_online_features(name, keys, features)
        target = self._online_names.get(name)
        if target is None:
            target = self._tables.get(name).name  # FeatureTableNotFound names close matches
            self._online_names[name] = target
        return self.online_store.get(target, keys, features)  # type: ignore[no-any-return]
