"""The SDK's single entry point: :meth:`Workspace.open` wires the layers below, lazily.

>>> ws = Workspace.open("./my-workspace")          # doctest: +SKIP
>>> ws.tables.write("raw.customers", df)             # doctest: +SKIP
>>> ws.sql("select count(*) from raw.customers")     # doctest: +SKIP
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakeloom.engines.base import Engine, Frame
from lakeloom.engines.factory import create_engine
from lakeloom.errors import SettingsError
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables
from lakeloom.settings import SETTINGS_FILE, Settings, default_settings_toml, parse_settings
from lakeloom.tracking.store import (
    TrackingConfig,
    activate,
    tracking_config,
    user_environment,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mlflow import MlflowClient

    from lakeloom.features.store import FeatureStore
    from lakeloom.monitoring.result import MonitorResult
    from lakeloom.tracking.registry import Registry
    from lakeloom.tracking.runs import Runs
    from lakeloom.training.train import TrainingResult

__all__ = ["Workspace"]

_FOLDERS = ("Tables", "Files")


def _normalise_root(root: str | os.PathLike[str] | None) -> str:
    if root is None:
        root = os.environ.get("LAKELOOM_WORKSPACE") or "."
    text = os.fspath(root)
    if "://" in text and not text.startswith("file://"):
        return text.rstrip("/")
    if text.startswith("file://"):
        text = text[len("file://") :]
    return str(Path(text).expanduser().resolve())


def _storage_options(root: str, settings_text: str | None, path: str) -> dict[str, str]:
    if not settings_text:
        return {}
    import tomllib

    try:
        data = tomllib.loads(settings_text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from None
    storage = data.get("storage", {})
    return {str(k): str(v) for k, v in storage.items()} if isinstance(storage, dict) else {}


class Workspace:
    """One root (a folder or an object-store URI) with its tables, files, and MLflow store."""

    def __init__(self, root: str, settings: Settings, storage: Storage) -> None:
        self.root = root
        self.settings = settings
        self.storage = storage
        self.tracking: TrackingConfig = tracking_config(settings, storage)
        activate(self.tracking)

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str] | None = None,
        *,
        engine: str | None = None,
        storage_options: dict[str, str] | None = None,
        create: bool = True,
    ) -> Workspace:
        """Open the workspace at ``root`` (default ``$LAKELOOM_WORKSPACE``, else ``.``).

        Settings come from ``<root>/lakeloom.toml`` (defaults when absent), overridden by
        ``LAKELOOM_*`` variables and then by ``engine``. Opening points MLflow's process-wide
        tracking and registry URIs at the workspace.
        """
        uri = _normalise_root(root)
        probe = Storage(uri, storage_options or {})
        settings_path = probe.uri(SETTINGS_FILE)
        text = probe.read_text(SETTINGS_FILE)
        options = {**_storage_options(uri, text, settings_path), **(storage_options or {})}
        storage = Storage(uri, options)
        import tomllib

        data = tomllib.loads(text) if text else {}
        settings = parse_settings(
            data, settings_path if text else "defaults", env=user_environment()
        )
        if engine is not None:
            from lakeloom.settings import with_overrides

            settings = with_overrides(settings, engine=engine)
        if storage.is_local:
            if not create and not Path(uri).is_dir():
                raise SettingsError(f"workspace folder {uri} does not exist; run lakeloom init")
            for folder in _FOLDERS:
                Path(uri, folder).mkdir(parents=True, exist_ok=True)
        return cls(uri, settings, storage)

    @classmethod
    def init(
        cls,
        root: str | os.PathLike[str] | None = None,
        *,
        storage_options: dict[str, str] | None = None,
    ) -> Workspace:
        """Create a workspace: ``lakeloom.toml`` with every setting documented, and folders.

        An existing ``lakeloom.toml`` is kept as it is.
        """
        uri = _normalise_root(root)
        storage = Storage(uri, storage_options or {})
        if storage.read_text(SETTINGS_FILE) is None:
            storage.write_text(default_settings_toml(), SETTINGS_FILE)
        return cls.open(uri, storage_options=storage_options)

    # -- parts -------------------------------------------------------------------------
    @cached_property
    def engine(self) -> Engine:
        """The compute engine the settings name (created on first use)."""
        return create_engine(self.settings)

    @cached_property
    def tables(self) -> Tables:
        """Lakehouse tables (Delta) under ``Tables/``."""
        return Tables(self.storage, self.engine)

    @property
    def files_dir(self) -> str:
        """Where raw files live (``Files/``)."""
        return self.storage.uri("Files")

    @property
    def mlflow_client(self) -> MlflowClient:
        """An ``MlflowClient`` bound to this workspace's store."""
        from lakeloom.tracking.store import client

        return client(self.tracking)

    @cached_property
    def runs(self) -> Runs:
        """MLflow experiments and runs: ``ws.runs.compare("churn", "roc_auc")``."""
        from lakeloom.tracking.runs import Runs

        return Runs(self.tracking)

    @cached_property
    def registry(self) -> Registry:
        """Registered models, aliases and their history, the promotion gate."""
        from lakeloom.tracking.registry import Registry

        return Registry(self.tracking, self.tables, self.engine)

    def train(
        self,
        data: Any,
        *,
        label: str,
        experiment: str,
        models: str | Sequence[str] | None = None,
        test_size: float = 0.2,
        seed: int = 42,
        params: Mapping[str, Any] | None = None,
        task: str | None = None,
        features: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        metric: str | None = None,
        run_name: str | None = None,
    ) -> TrainingResult:
        """Train ``models`` on a table name or frame, one MLflow child run per model.

        >>> result = ws.train("raw.churn", label="churned", experiment="churn",
        ...                   models=["logistic_regression", "xgboost"])  # doctest: +SKIP
        >>> result.best("roc_auc").run_id  # doctest: +SKIP

        See :func:`lakeloom.training.train`.
        """
        from lakeloom.training.train import TrainingContext, train

        return train(
            TrainingContext(self.tracking, self.tables, self.engine),
            data,
            label=label,
            experiment=experiment,
            models=models,
            test_size=test_size,
            seed=seed,
            params=params,
            task=task,
            features=features,
            exclude=exclude,
            metric=metric,
            run_name=run_name,
        )

    @cached_property
    def features(self) -> FeatureStore:
        """The feature store: feature tables, point-in-time training sets, feature-aware models.

        >>> ws.features.create_table("features.c", "customer_id", "ts", df=df)  # doctest: +SKIP
        """
        from lakeloom.features.store import FeatureContext, FeatureStore

        return FeatureStore(
            FeatureContext(self.tables, self.engine, self.tracking, self.settings, self.storage)
        )

    def score_batch(
        self,
        model: Any,
        data: Any,
        *,
        output_table: str | None = None,
        mode: str = "overwrite",
        keys: Sequence[str] | str | None = None,
        **options: Any,
    ) -> Any:
        """Score ``data`` with ``model`` (a URI such as ``models:/churn@production``).

        A feature-aware model needs only its lookup keys (and the label time for point in
        time): it fetches its features. Without ``output_table`` the predictions come back
        as a frame (see :func:`lakeloom.features.scoring.score_batch`). With it, ``data`` may
        be a table name: its rows stream through the engine and the output table gets the
        keys, predictions, class probabilities and provenance in one commit (``mode``
        ``overwrite``, ``append`` or ``merge`` on ``keys``); returns a
        :class:`~lakeloom.deployment.batch.BatchScoringResult`
        (see :func:`lakeloom.deployment.batch.score_table`).

        >>> ws.score_batch("models:/churn_model@production", "raw.new_customers",
        ...                output_table="predictions.customer_churn")  # doctest: +SKIP
        """
        if output_table is None:
            if keys is not None or mode != "overwrite":
                from lakeloom.errors import InvalidArgument

                raise InvalidArgument("mode and keys apply to scoring into an output_table")
            return self.features.score_batch(model, data, **options)
        from lakeloom.deployment.batch import BatchScoringContext, score_table

        ctx = BatchScoringContext(self.tracking, self.tables, self.engine)
        return score_table(
            ctx, model, data, output_table=output_table, mode=mode, keys=keys, **options
        )

    def sql(self, query: str) -> Frame:
        """SQL over the lakehouse; ``schema.table`` names resolve to Delta tables.

        ``predict('churn_model@production', *)`` scores rows with a registered model
        (see :mod:`lakeloom.deployment.sql_predict`).
        """
        if "predict" not in query.lower():
            return self.tables.sql(query)
        from lakeloom.deployment.sql_predict import predict_function

        function = predict_function(self.tracking)
        return self.engine.sql(query, self.tables, functions=[function])

    def monitor(self, *, baseline: str, **options: Any) -> MonitorResult:
        """Compare an endpoint's inference table (``endpoint=``) or a table (``table=``) with
        ``baseline`` (a table or ``models:/name@alias``): drift, data quality, latency.

        >>> ws.monitor(endpoint="churn", baseline="ml.churn_training")  # doctest: +SKIP

        See :func:`lakeloom.monitoring.monitor`.
        """
        from lakeloom.monitoring import MonitorContext, monitor

        return monitor(
            MonitorContext(self.tables, self.engine, self.tracking), baseline=baseline, **options
        )

    def close(self) -> None:
        """Release the engine (stops a Spark session this workspace started)."""
        engine = self.__dict__.pop("engine", None)
        self.__dict__.pop("tables", None)
        self.__dict__.pop("registry", None)
        self.__dict__.pop("features", None)
        if engine is not None:
            engine.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({self.root!r}, engine={self.settings.engine!r})"
