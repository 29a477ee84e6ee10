"""The model registry with aliases and their history (``ws.registry``).

Aliases (``models:/churn_model@production``), never the deprecated stages. Every alias move
goes through :meth:`Registry.promote`, :meth:`Registry.rollback`, :meth:`Registry.delete_alias`
or the gate, and follows one protocol (MLflow has no compare-and-set on aliases):

1. Read the history (a Delta snapshot at version V) and the alias in MLflow.
2. If MLflow disagrees with the last recorded move, someone moved the alias behind
   lakeloom's back: record an ``external`` row first (unless that last move is still being
   applied by a concurrent lakeloom writer, which is waited for).
3. Commit the new history row conditioned on V (see :mod:`lakeloom.tracking.alias_history`).
   If another writer committed first, go back to 1 (bounded by a timeout; then
   :class:`~lakeloom.errors.AliasConflict`, which is safe to retry).
4. Set (or delete) the alias in MLflow.

So of two racing promotions both end up in the history, in the order they took effect, and
each row's ``from_version`` is the previous row's ``to_version``.
"""

from __future__ import annotations

import builtins
import getpass
import os
import random
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from lakeloom.engines.base import Engine
from lakeloom.errors import (
    AliasConflict,
    InvalidArgument,
    ModelNotFound,
    RunNotFound,
    TrackingError,
)
from lakeloom.lakehouse.tables import Tables
from lakeloom.models.loading import load_model_dir
from lakeloom.tracking.alias_history import (
    HISTORY_TABLE,
    AliasEvent,
    AliasHistory,
    HistoryConflict,
    Snapshot,
)
from lakeloom.tracking.runs import TAG_MODEL, Runs, RunSummary, using_tracking
from lakeloom.tracking.store import TrackingConfig, client

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from lakeloom.tracking.gate import GateResult

__all__ = [
    "STAGES",
    "ModelDetails",
    "ModelVersionInfo",
    "RegisteredModelInfo",
    "Registry",
    "parse_model_uri",
    "stage_error",
]

#: MLflow's deprecated stages; asking for one gets a message naming the alias to use.
STAGES = ("none", "staging", "production", "archived")
#: How long a recorded move may take to show up in MLflow before it counts as not applied.
INFLIGHT_GRACE = timedelta(seconds=10)
#: How long a move keeps retrying against concurrent writers before giving up.
MOVE_TIMEOUT = 30.0
_COPY_TAGS = (
    "lakeloom.model",
    "lakeloom.label",
    "lakeloom.task",
    "lakeloom.metric",
    "lakeloom.table",
    "lakeloom.table_version",
)


def stage_error(name: str, stage: str) -> InvalidArgument:
    """The error for asking for a registry stage: stages are deprecated, use the alias."""
    alias = stage.strip().lower()
    return InvalidArgument(
        f"registry stages are deprecated in MLflow and lakeloom uses aliases: instead of "
        f"stage {stage!r} use models:/{name}@{alias} (move it with: lakeloom models promote "
        f"{name} --version N --alias {alias})"
    )


def parse_model_uri(uri: str) -> tuple[str, int | None, str | None]:
    """``(name, version, alias)`` of ``models:/name/3``, ``models:/name@alias`` or ``name@alias``.

    ``models:/name/latest`` gives version None and alias None (the latest version).
    A stage (``models:/name/Production``) is an error that names the alias to use.
    """
    text = uri.strip()
    if text.startswith("models:/"):
        text = text[len("models:/") :]
    if "@" in text:
        name, _, alias = text.partition("@")
        if not name or not alias or "/" in alias:
            raise InvalidArgument(f"cannot read model URI {uri!r}; use models:/name@alias")
        return name, None, alias
    name, _, rest = text.partition("/")
    if not name:
        raise InvalidArgument(f"cannot read model URI {uri!r}; use models:/name/version")
    if not rest or rest == "latest":
        return name, None, None
    if rest.isdigit():
        return name, int(rest), None
    if rest.lower() in STAGES:
        raise stage_error(name, rest)
    raise InvalidArgument(
        f"cannot read model URI {uri!r}: {rest!r} is not a version number; use "
        f"models:/{name}/<version> or models:/{name}@<alias>"
    )


def _ms(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts / 1000, UTC) if ts else None


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version."""

    name: str
    version: int
    run_id: str | None
    source: str | None
    status: str
    aliases: tuple[str, ...]
    created: datetime | None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/name/version``."""
        return f"models:/{self.name}/{self.version}"

    @classmethod
    def from_mlflow(
        cls, mv: ModelVersion, metrics: Mapping[str, float] | None = None
    ) -> ModelVersionInfo:
        """From an MLflow ``ModelVersion``."""
        return cls(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id,
            source=mv.source,
            status=str(mv.status),
            aliases=tuple(sorted(mv.aliases or ())),
            created=_ms(mv.creation_timestamp),
            tags=dict(mv.tags or {}),
            metrics=dict(metrics or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "run_id": self.run_id,
            "source": self.source,
            "status": self.status,
            "aliases": list(self.aliases),
            "created": self.created.isoformat() if self.created else None,
            "model": self.tags.get(TAG_MODEL),
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class RegisteredModelInfo:
    """A registered model: its latest version and its aliases."""

    name: str
    latest_version: int | None
    aliases: dict[str, int]
    description: str
    updated: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "aliases": self.aliases,
            "description": self.description,
            "updated": self.updated.isoformat() if self.updated else None,
        }


@dataclass(frozen=True)
class ModelDetails:
    """``models show``: the model and all its versions (newest first)."""

    model: RegisteredModelInfo
    versions: tuple[ModelVersionInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {**self.model.to_dict(), "versions": [v.to_dict() for v in self.versions]}


def default_user() -> str:
    """Who is moving aliases: ``$LAKELOOM_USER``, else the login name."""
    user = os.environ.get("LAKELOOM_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


class Registry:
    """Registered models, their versions, aliases and alias history (``ws.registry``)."""

    def __init__(
        self, config: TrackingConfig, tables: Tables, engine: Engine | None = None
    ) -> None:
        self._config = config
        self._tables = tables
        self._engine = engine
        self._history = AliasHistory(tables.ref(HISTORY_TABLE, system=True))
        self._runs = Runs(config)

    @property
    def client(self) -> MlflowClient:
        """The ``MlflowClient`` bound to the workspace's registry."""
        return client(self._config)

    @property
    def alias_history(self) -> AliasHistory:
        """The ``lakeloom.alias_history`` table."""
        return self._history

    # -- lookups -----------------------------------------------------------------------
    def names(self) -> builtins.list[str]:
        """Names of every registered model, sorted."""
        try:
            found = self.client.search_registered_models(max_results=1000)
        except Exception as exc:
            raise TrackingError(
                f"cannot read the registry at {self._config.registry_uri}: {exc}"
            ) from None
        names = [m.name for m in found]
        token = getattr(found, "token", None)
        while token:
            page = self.client.search_registered_models(max_results=1000, page_token=token)
            names.extend(m.name for m in page)
            token = getattr(page, "token", None)
        return sorted(names)

    def _model(self, name: str) -> RegisteredModel:
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument("model name must not be empty")
        try:
            return self.client.get_registered_model(name)
        except Exception as exc:
            if not _not_found(exc):
                raise TrackingError(f"cannot read model {name!r}: {exc}") from None
        close = get_close_matches(name, self.names(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `lakeloom models list`"
        raise ModelNotFound(f"registered model {name!r} does not exist{hint}")

    def _versions(self, name: str) -> builtins.list[ModelVersion]:
        found = list(self.client.search_model_versions(f"name = '{_quote(name)}'"))
        return sorted(found, key=lambda mv: int(mv.version), reverse=True)

    def _version(self, name: str, version: int | str) -> ModelVersion:
        self._model(name)
        text = str(version).strip().lstrip("v")
        if not text.isdigit():
            raise InvalidArgument(f"model version must be a number, got {version!r}")
        try:
            return self.client.get_model_version(name, text)
        except Exception as exc:
            if not _not_found(exc):
                raise TrackingError(f"cannot read {name} version {text}: {exc}") from None
        known = ", ".join(str(int(mv.version)) for mv in reversed(self._versions(name)))
        raise ModelNotFound(
            f"model {name!r} has no version {text} (versions: {known or 'none'})"
        ) from None

    def _aliases(self, name: str) -> dict[str, int]:
        model = self._model(name)
        return {str(k): int(v) for k, v in (model.aliases or {}).items()}

    def current(self, name: str, alias: str) -> int | None:
        """The version ``alias`` of ``name`` points at in MLflow (None: unset)."""
        return self._aliases(name).get(alias)

    def version(self, name: str, version: int | str) -> ModelVersionInfo:
        """Version ``version`` of ``name``."""
        return self._info(self._version(name, version))

    def _info(self, mv: ModelVersion) -> ModelVersionInfo:
        metrics: dict[str, float] = {}
        if mv.run_id:
            try:
                metrics = dict(self.client.get_run(mv.run_id).data.metrics)
            except Exception:
                metrics = {}
        return ModelVersionInfo.from_mlflow(mv, metrics)

    def resolve(
        self,
        uri_or_name: str,
        *,
        version: int | str | None = None,
        alias: str | None = None,
        stage: str | None = None,
    ) -> ModelVersionInfo:
        """The version a URI (``models:/name@alias``, ``models:/name/3``) or name refers to."""
        name, parsed_version, parsed_alias = parse_model_uri(uri_or_name)
        if stage is not None:
            raise stage_error(name, stage)
        version = parsed_version if version is None else version
        alias = parsed_alias if alias is None else alias
        if alias is not None:
            self._check_alias_name(alias)
            target = self.current(name, alias)
            if target is None:
                known = ", ".join(f"{a}=v{v}" for a, v in sorted(self._aliases(name).items()))
                raise ModelNotFound(
                    f"model {name!r} has no alias {alias!r} (aliases: {known or 'none'})"
                )
            return self.version(name, target)
        if version is None:
            self._model(name)
            versions = self._versions(name)
            if not versions:
                raise ModelNotFound(f"model {name!r} has no versions")
            return self._info(versions[0])
        return self.version(name, version)

    def load_model(
        self,
        uri_or_name: str,
        *,
        version: int | str | None = None,
        alias: str | None = None,
        trusted_types: Iterable[str] = (),
        allow_pickle: bool = False,
    ) -> Any:
        """The model a URI or name refers to, loaded with lakeloom's trust rules.

        A scikit-learn model (lakeloom's pipelines included) comes back as the fitted
        estimator, with ``predict_proba`` where it has one.
        """
        info = self.resolve(uri_or_name, version=version, alias=alias)
        import mlflow.artifacts

        with tempfile.TemporaryDirectory() as tmp:
            try:
                # MLflow resolves ``models:/`` URIs partly through the process-wide URIs
                # (another workspace may have been opened since this one).
                with using_tracking(self._config):
                    local = mlflow.artifacts.download_artifacts(
                        artifact_uri=info.uri,
                        dst_path=tmp,
                        tracking_uri=self._config.tracking_uri,
                        registry_uri=self._config.registry_uri,
                    )
            except Exception as exc:
                raise TrackingError(f"cannot download {info.uri}: {exc}") from None
            return load_model_dir(
                local,
                trusted_types=trusted_types,
                allow_pickle=allow_pickle,
                what=f"model {info.uri}",
            )

    # -- listing -----------------------------------------------------------------------
    def list(self) -> builtins.list[RegisteredModelInfo]:
        """Every registered model with its latest version and aliases."""
        return [self._summary(self._model(name)) for name in self.names()]

    def _summary(self, model: RegisteredModel) -> RegisteredModelInfo:
        versions = self._versions(model.name)
        return RegisteredModelInfo(
            name=model.name,
            latest_version=int(versions[0].version) if versions else None,
            aliases={str(k): int(v) for k, v in sorted((model.aliases or {}).items())},
            description=model.description or "",
            updated=_ms(model.last_updated_timestamp),
        )

    def show(self, name: str) -> ModelDetails:
        """``name`` with every version (newest first), their aliases and run metrics."""
        model = self._model(name)
        return ModelDetails(
            model=self._summary(model),
            versions=tuple(self._info(mv) for mv in self._versions(name)),
        )

    # -- registering -------------------------------------------------------------------
    def register(
        self,
        run_id: str | None = None,
        *,
        name: str,
        best: bool = False,
        experiment: str | None = None,
        metric: str | None = None,
        description: str | None = None,
    ) -> ModelVersionInfo:
        """Register the model of run ``run_id`` (or the ``best`` run of ``experiment``).

        >>> ws.registry.register(best=True, experiment="churn", metric="roc_auc",
        ...                      name="churn_model")  # doctest: +SKIP
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument("pass the model name to register under (name='churn_model')")
        if best:
            if run_id is not None:
                raise InvalidArgument("pass a run id or best=True with an experiment, not both")
            if not experiment:
                raise InvalidArgument("best=True needs the experiment to pick the best run of")
            run = self._runs.best(experiment, metric)
        elif run_id:
            run = self._runs.get(run_id)
        else:
            raise InvalidArgument("pass a run id, or best=True with an experiment and a metric")
        source, model_id = self._model_source(run)
        from mlflow.exceptions import MlflowException

        c = self.client
        try:
            # MLflow resolves a ``models:/`` source partly through the process-wide URI.
            with using_tracking(self._config):
                mv = self._create_version(c, name, source, run, model_id, description)
        except MlflowException as exc:
            raise TrackingError(
                f"cannot register run {run.run_id} as {name!r}: {exc.message}"
            ) from None
        return self._info(mv)

    @staticmethod
    def _create_version(
        c: MlflowClient,
        name: str,
        source: str,
        run: RunSummary,
        model_id: str | None,
        description: str | None,
    ) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        try:
            c.create_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        tags = {k: v for k, v in run.tags.items() if k in _COPY_TAGS}
        tags["lakeloom.run_id"] = run.run_id
        return c.create_model_version(
            name,
            source,
            run_id=run.run_id,
            tags=tags,
            description=description,
            model_id=model_id,
        )

    def _model_source(self, run: RunSummary) -> tuple[str, str | None]:
        """The logged model of ``run``: (source URI, logged model id)."""
        uri = run.tags.get("lakeloom.model_uri")
        if uri and uri.startswith("models:/"):
            return uri, uri[len("models:/") :]
        full = self.client.get_run(run.run_id)
        outputs = getattr(full, "outputs", None)
        models = list(getattr(outputs, "model_outputs", None) or [])
        if models:
            chosen = max(models, key=lambda m: m.step)
            return f"models:/{chosen.model_id}", chosen.model_id
        try:
            names = [a.path for a in self.client.list_artifacts(run.run_id, "model")]
        except Exception:
            names = []
        if "model/MLmodel" in names:
            return f"runs:/{run.run_id}/model", None
        raise RunNotFound(f"run {run.run_id} ({run.run_name or 'unnamed'}) has no logged model")

    # -- aliases -----------------------------------------------------------------------
    @staticmethod
    def _check_alias_name(alias: str) -> None:
        if not isinstance(alias, str) or not alias.strip():
            raise InvalidArgument("alias must not be empty (e.g. production)")
        from mlflow.exceptions import MlflowException
        from mlflow.utils.validation import (
            _validate_model_alias_name,
            _validate_model_alias_name_reserved,
        )

        try:
            _validate_model_alias_name(alias)  # type: ignore[no-untyped-call]
            _validate_model_alias_name_reserved(alias)  # type: ignore[no-untyped-call]
        except MlflowException as exc:
            raise InvalidArgument(f"alias {alias!r} is not allowed: {exc.message}") from None

    def _reconcile(
        self, snap: Snapshot, name: str, alias: str, current: int | None, *, user: str
    ) -> AliasEvent | None:
        """The ``external`` event to record if MLflow disagrees with the history, else None.

        Returns None too while the last recorded move is still being applied (recent, and
        MLflow still shows its from-version).
        """
        last = snap.last(name, alias)
        recorded = last.to_version if last else None
        if current == recorded:
            return None
        if _in_flight(last, current):
            return None
        return AliasEvent.new(
            model=name,
            alias=alias,
            seq=snap.next_seq(name, alias),
            from_version=recorded,
            to_version=current,
            user=user,
            reason=(
                "alias moved outside lakeloom (detected by lakeloom: MLflow shows "
                f"{_v(current)}, the history {_v(recorded)})"
            ),
            kind="external",
        )

    def _move(
        self,
        name: str,
        alias: str,
        decide: Any,
        *,
        user: str,
        timeout: float = MOVE_TIMEOUT,
    ) -> AliasEvent | None:
        """Run the compare-and-set protocol; ``decide(snapshot, current)`` makes the event.

        ``decide`` returns the event to record (its ``to_version`` is applied to MLflow) or
        None for nothing to do; it may raise to refuse.
        """
        c = self.client
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            snap = self._history.snapshot()
            current = self.current(name, alias)
            try:
                if _in_flight(snap.last(name, alias), current):
                    raise HistoryConflict("a concurrent move is being applied")
                external = self._reconcile(snap, name, alias, current, user=user)
                if external is not None:
                    self._history.append([external], read_version=snap.version)
                    continue
                event: AliasEvent | None = decide(snap, current)
                if event is None:
                    return None
                self._history.append([event], read_version=snap.version)
            except HistoryConflict:
                if time.monotonic() > deadline:
                    raise AliasConflict(
                        f"could not move alias {alias!r} of {name!r}: other writers kept "
                        f"changing it for {timeout:.0f}s; nothing was changed, retry"
                    ) from None
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
                continue
            if event.moved:
                try:
                    if event.to_version is None:
                        c.delete_registered_model_alias(name, alias)
                    else:
                        c.set_registered_model_alias(name, alias, str(event.to_version))
                except Exception as exc:
                    raise TrackingError(
                        f"recorded {alias!r} {_v(event.from_version)} -> {_v(event.to_version)} "
                        f"for {name!r} but MLflow refused to apply it ({exc}); the next "
                        "lakeloom command records what MLflow shows"
                    ) from None
            return event

    def promote(
        self,
        name: str,
        version: int | str,
        alias: str = "production",
        *,
        reason: str = "",
        user: str | None = None,
        stage: str | None = None,
    ) -> AliasEvent | None:
        """Point ``alias`` of ``name`` at ``version``, recording the move in the history.

        Returns the recorded event, or None when the alias already points there.
        """
        if stage is not None:
            raise stage_error(name, stage)
        self._check_alias_name(alias)
        target = int(self._version(name, version).version)
        who = user or default_user()

        def decide(snap: Snapshot, current: int | None) -> AliasEvent | None:
            if current == target:
                return None
            return AliasEvent.new(
                model=name,
                alias=alias,
                seq=snap.next_seq(name, alias),
                from_version=current,
                to_version=target,
                user=who,
                reason=reason,
                kind="promote",
            )

        return self._move(name, alias, decide, user=who)

    def rollback_target(self, name: str, alias: str) -> AliasEvent:
        """The move a rollback would undo (its ``from_version`` is where the alias goes)."""
        snap = self._history.snapshot()
        return _undo_target(snap, name, alias, self.current(name, alias))

    def rollback(
        self,
        name: str,
        alias: str = "production",
        *,
        reason: str = "",
        user: str | None = None,
    ) -> AliasEvent:
        """Point ``alias`` back at the version it pointed at before its last move.

        Repeated rollbacks walk further back (a rollback undoes the latest move that was not
        itself undone).
        """
        self._check_alias_name(alias)
        self._model(name)
        who = user or default_user()

        def decide(snap: Snapshot, current: int | None) -> AliasEvent:
            undone = _undo_target(snap, name, alias, current)
            target = undone.from_version
            if target is None:
                raise InvalidArgument(
                    f"alias {alias!r} of {name!r} has no earlier version to roll back to "
                    f"({_v(undone.to_version)} was the first it pointed at); promote a "
                    "version instead"
                )
            self._version(name, target)
            return AliasEvent.new(
                model=name,
                alias=alias,
                seq=snap.next_seq(name, alias),
                from_version=current,
                to_version=target,
                user=who,
                reason=reason or f"rollback of event {undone.seq} ({undone.kind})",
                kind="rollback",
                details={"undoes_seq": undone.seq},
            )

        event = self._move(name, alias, decide, user=who)
        assert event is not None
        return event

    def delete_alias(
        self, name: str, alias: str, *, reason: str = "", user: str | None = None
    ) -> AliasEvent:
        """Remove ``alias`` from ``name`` (recorded as a ``delete`` event)."""
        self._check_alias_name(alias)
        who = user or default_user()

        def decide(snap: Snapshot, current: int | None) -> AliasEvent:
            if current is None:
                raise ModelNotFound(f"model {name!r} has no alias {alias!r}")
            return AliasEvent.new(
                model=name,
                alias=alias,
                seq=snap.next_seq(name, alias),
                from_version=current,
                to_version=None,
                user=who,
                reason=reason,
                kind="delete",
            )

        event = self._move(name, alias, decide, user=who)
        assert event is not None
        return event

    def record_gate(
        self,
        name: str,
        alias: str,
        *,
        candidate: int,
        expected_current: int | None,
        promote: bool,
        reason: str,
        details: Mapping[str, Any],
        user: str | None = None,
    ) -> AliasEvent:
        """Record a gate decision; when ``promote``, also move the alias to ``candidate``.

        Fails with :class:`AliasConflict` if the alias moved since the gate compared against
        ``expected_current`` (the decision would be about a different model).
        """
        who = user or default_user()

        def decide(snap: Snapshot, current: int | None) -> AliasEvent:
            if current != expected_current:
                raise AliasConflict(
                    f"alias {alias!r} of {name!r} moved from {_v(expected_current)} to "
                    f"{_v(current)} while the gate ran; run the gate again"
                )
            return AliasEvent.new(
                model=name,
                alias=alias,
                seq=snap.next_seq(name, alias),
                from_version=current,
                to_version=candidate if promote else current,
                user=who,
                reason=reason,
                kind="gate",
                details={**details, "candidate": candidate},
            )

        event = self._move(name, alias, decide, user=who)
        assert event is not None
        return event

    def history(self, name: str, alias: str | None = None) -> builtins.list[AliasEvent]:
        """Every recorded event of ``name`` (or one ``alias``), oldest first.

        Moves made with plain MLflow calls since the last lakeloom move are detected here
        and recorded as ``external`` events first.
        """
        snap = self._history.snapshot()
        try:
            aliases = self._aliases(name)
        except ModelNotFound:
            if snap.of(name):
                return [e for e in snap.of(name, alias)]
            raise
        names = sorted(set(aliases) | set(snap.aliases(name)))
        if alias is not None:
            self._check_alias_name(alias)
            names = [alias]
        who = default_user()
        for a in names:
            if self._reconcile(snap, name, a, aliases.get(a), user=who) is not None:
                self._move(name, a, lambda _s, _c: None, user=who)
        snap = self._history.snapshot()
        return snap.of(name, alias)

    # -- the gate ----------------------------------------------------------------------
    def gate(
        self,
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
        """Score ``candidate`` and the alias holder on ``holdout``; promote if better.

        See :func:`lakeloom.tracking.gate.run_gate`.
        """
        from lakeloom.tracking.gate import run_gate

        return run_gate(
            self,
            name,
            candidate=candidate,
            holdout=holdout,
            alias=alias,
            metric=metric,
            min_improvement=min_improvement,
            threshold=threshold,
            label=label,
            reason=reason,
            trusted_types=trusted_types,
            user=user,
        )

    @property
    def tables(self) -> Tables:
        """The lakehouse (holdout tables for the gate)."""
        return self._tables

    @property
    def engine(self) -> Engine | None:
        """The compute engine (reads holdout tables)."""
        return self._engine

    @property
    def tracking(self) -> TrackingConfig:
        """Where MLflow tracks and registers."""
        return self._config


def _in_flight(last: AliasEvent | None, current: int | None) -> bool:
    """Whether ``last`` is a lakeloom move that MLflow does not show yet but soon may.

    A writer commits its history row first and then sets the alias, so for a moment MLflow
    still shows the row's from-version. External rows and refused gates move nothing in
    MLflow and are never in flight.
    """
    return (
        last is not None
        and last.kind != "external"
        and last.moved
        and current != last.to_version
        and current == last.from_version
        and datetime.now(UTC) - last.at < INFLIGHT_GRACE
    )


def _undo_target(snap: Snapshot, name: str, alias: str, current: int | None) -> AliasEvent:
    moves = [e for e in snap.of(name, alias) if e.moved]
    skip = 0
    for event in reversed(moves):
        if event.kind == "rollback":
            skip += 1
        elif skip:
            skip -= 1
        else:
            return event
    raise InvalidArgument(
        f"alias {alias!r} of {name!r} has no recorded move to roll back"
        + (f" (it points at {_v(current)})" if current is not None else " (it is not set)")
    )


def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
