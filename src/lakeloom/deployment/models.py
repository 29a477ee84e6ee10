"""Loading registry models for serving: the :class:`ModelHandle` seam, warm-up, hot reload.

The seam
--------
An endpoint only needs two things from a model: the columns a request must carry
(:attr:`ModelHandle.input_schema`) and a way to score checked rows
(:meth:`ModelHandle.predict`). Loaders turn a downloaded model folder into a handle; they
are tried newest first, and the first that returns a handle wins::

    def load_onnx(request: LoadRequest) -> ModelHandle | None:
        if "onnx" not in request.mlmodel.flavors:
            return None                     # not mine: the next loader tries
        return OnnxHandle(request)          # input_schema + predict(columns, types, rows)

    register_model_loader(load_onnx)

Feature-aware models (logged with ``ws.features.log_model``) have their own loader,
:func:`lakeloom.deployment.feature_serving.load_feature_aware`: their input schema is the
entity keys, and ``predict`` looks the features up in the workspace's online store. A handle
may also offer ``predict_enriched(columns, types, rows) -> (predictions, rows_as_scored)``:
the micro-batcher then logs the rows as scored (e.g. with looked-up features) in the
inference table, and ``status() -> dict`` adds to the model's entry in ``/ready``.

The default loader (:class:`PyfuncHandle`) loads with lakeloom's trust rules
(:func:`lakeloom.models.load_model_dir`), takes the input schema from the MLflow signature
and scores a pandas frame built once per micro-batch. A LightGBM booster whose inputs are
all numeric is scored on a numpy matrix directly: that is exactly what MLflow's LightGBM
pyfunc does after converting the frame, without the conversion. Handles may offer
``predict_matrix(columns, matrix)`` for all-double inputs: the micro-batcher then builds one
float64 matrix per batch, and the inference table logs from it.

Hot reload
----------
A :class:`ModelSlot` holds the handle currently served for one model URI. The
:class:`~lakeloom.deployment.runtime.EndpointRuntime` poller resolves moving URIs (aliases,
``latest``); when the version changes it downloads, loads and warms the new version in the
background, then swaps the slot's handle (one attribute assignment). Requests already
checked against the old handle are scored by it, so none fails during the swap. A version
that fails to load is not swapped in: the old one keeps serving and the slot says why.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from lakeloom.deployment.config import ModelRef
from lakeloom.deployment.schema import NUMERIC, InputSchema, columns_of
from lakeloom.errors import LakeloomError, ModelLoadError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.models import Model

    from lakeloom.tracking.store import TrackingConfig

__all__ = [
    "LoadRequest",
    "ModelHandle",
    "ModelLoader",
    "ModelSlot",
    "PyfuncHandle",
    "load_version",
    "register_model_loader",
    "resolve_version",
]

log = logging.getLogger("lakeloom.deployment")


@runtime_checkable
class ModelHandle(Protocol):
    """A loaded model version, ready to score checked rows."""

    #: Registered model name and version (the version is None for unversioned models).
    name: str
    version: int | None

    @property
    def input_schema(self) -> InputSchema | None:
        """The columns requests must carry (None: any columns, types inferred)."""
        ...

    def predict(
        self, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> list[Any]:
        """One JSON-ready prediction per row (a number, string, list or object)."""
        ...

    def warm_up(self) -> None:
        """Score a sample row so the first request does not pay for lazy initialisation."""
        ...


@dataclass(frozen=True)
class LoadRequest:
    """What a loader gets: the downloaded model folder and how it may be loaded."""

    name: str
    version: int | None
    local_dir: Path
    mlmodel: Model
    trusted_types: tuple[str, ...] = ()
    allow_pickle: bool = False
    #: Opens (once) the workspace's online store, for models that look features up.
    online_store: Callable[[], Any] | None = None


#: A loader returns a handle for the models it recognises, None for the others.
ModelLoader = Callable[[LoadRequest], "ModelHandle | None"]
_LOADERS: list[ModelLoader] = []


def register_model_loader(loader: ModelLoader) -> ModelLoader:
    """Try ``loader`` before the loaders registered earlier (and the default one)."""
    if loader not in _LOADERS:
        _LOADERS.insert(0, loader)
    return loader


#: From this many rows, a LightGBM booster predicts with its own thread pool.
_PARALLEL_ROWS = 2048


def _predictions(raw: Any, n: int) -> list[Any]:
    """A model's output as one JSON-ready value per row (MLflow's shapes)."""
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        out: list[Any] = raw.to_dict(orient="records")
    elif isinstance(raw, pd.Series):
        out = raw.to_numpy().tolist()
    elif isinstance(raw, np.ndarray):
        out = raw.tolist()
    elif isinstance(raw, list | tuple):
        out = [v.tolist() if hasattr(v, "tolist") else v for v in raw]
    else:
        raise TypeError(f"the model returned {type(raw).__name__}, not one value per row")
    if len(out) != n:
        raise TypeError(f"the model returned {len(out)} predictions for {n} rows")
    return out


class PyfuncHandle:
    """The default handle: an MLflow model loaded with lakeloom's trust rules."""

    def __init__(self, request: LoadRequest) -> None:
        from lakeloom.models.loading import load_model_dir

        self.name = request.name
        self.version = request.version
        self._dir = request.local_dir
        self._mlmodel = request.mlmodel
        signature = request.mlmodel.signature
        self._schema = InputSchema.from_mlflow(signature.inputs if signature else None)
        self.model = load_model_dir(
            request.local_dir,
            trusted_types=request.trusted_types,
            allow_pickle=request.allow_pickle,
            what=f"model {request.name} version {request.version}",
        )
        self._booster, order = self._numeric_booster()
        # The booster's feature order, when it differs from the schema's (None: the same).
        self._order = None if order == list(range(len(order or ()))) else order

    @property
    def input_schema(self) -> InputSchema | None:
        """From the model's MLflow signature (None when it has none or it is a tensor)."""
        return self._schema

    def _numeric_booster(self) -> tuple[Any, list[int] | None]:
        """The LightGBM booster, when the MLflow pyfunc would only call its ``predict``."""
        schema = self._schema
        if schema is None or "lightgbm" not in self._mlmodel.flavors:
            return None, None
        raw: Any = getattr(self.model, "get_raw_model", lambda: None)()
        if type(raw).__name__ != "Booster" or not hasattr(raw, "feature_name"):
            return None, None
        if getattr(raw, "pandas_categorical", None) or not set(schema.types) <= NUMERIC:
            return None, None
        features = list(raw.feature_name())
        if sorted(features) != sorted(schema.names):
            return None, None
        return raw, [schema.index[f] for f in features]

    def predict(
        self, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> list[Any]:
        """Score ``rows`` (values in ``columns`` order)."""
        import pandas as pd

        if self._booster is not None:
            return self.predict_matrix(columns, np.array(rows, dtype=np.float64))
        arrays = columns_of(rows, types)
        if arrays and len({a.dtype for a in arrays}) == 1 and arrays[0].dtype != object:
            frame = pd.DataFrame(np.column_stack(arrays), columns=list(columns), copy=False)
        else:
            frame = pd.DataFrame(dict(zip(columns, arrays, strict=True)), copy=False)
        return _predictions(self.model.predict(frame), len(rows))

    def predict_matrix(self, columns: tuple[str, ...], matrix: np.ndarray[Any, Any]) -> list[Any]:
        """Score all-double rows given as one float64 matrix (columns in ``columns`` order)."""
        n = len(matrix)
        if self._booster is None:
            import pandas as pd

            frame = pd.DataFrame(matrix, columns=list(columns), copy=False)
            return _predictions(self.model.predict(frame), n)
        if self._order is not None:
            matrix = matrix[:, self._order]
        # Micro-batches are small: OpenMP threads cost more than they save there (and on a
        # busy machine a thread waiting for a core stalls the whole call).
        threads = 1 if n < _PARALLEL_ROWS else 0
        return _predictions(self._booster.predict(matrix, num_threads=threads), n)

    def warm_up(self) -> None:
        """Score the model's input example (or a row of zeros and empty strings)."""
        rows, columns, types = self._example()
        if rows:
            self.predict(columns, types, rows)

    def _example(self) -> tuple[list[tuple[Any, ...]], tuple[str, ...], tuple[str, ...]]:
        schema = self._schema
        if schema is None:
            return [], (), ()
        try:
            example = self._mlmodel.load_input_example(str(self._dir))
        except Exception:
            example = None
        import pandas as pd

        if isinstance(example, pd.DataFrame) and set(schema.names) <= set(example.columns):
            frame = example[list(schema.names)].head(2)
            rows = [tuple(_plain(v) for v in r) for r in frame.itertuples(index=False, name=None)]
            return rows, schema.names, schema.types
        blank = {"string": "", "boolean": False, "binary": b"", "datetime": "2020-01-01"}
        row = tuple(blank.get(t, 0) for t in schema.types)
        return [row], schema.names, schema.types

    def __repr__(self) -> str:
        return f"PyfuncHandle({self.name!r}, version={self.version})"


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def resolve_version(client: MlflowClient, ref: ModelRef) -> int:
    """The version ``ref`` points at now (its alias, ``latest``, or its fixed version)."""
    from mlflow.exceptions import MlflowException

    if ref.version is not None:
        return ref.version
    try:
        if ref.alias is not None:
            return int(client.get_model_version_by_alias(ref.name, ref.alias).version)
        escaped = ref.name.replace("'", "\\'")
        versions = client.search_model_versions(f"name='{escaped}'")
    except MlflowException as exc:
        raise ModelLoadError(f"cannot resolve {ref.uri}: {exc.message}") from None
    if not versions:
        raise ModelLoadError(f"cannot resolve {ref.uri}: model {ref.name!r} has no versions")
    return max(int(v.version) for v in versions)


def load_version(
    tracking: TrackingConfig,
    ref: ModelRef,
    version: int,
    *,
    trusted_types: Sequence[str] = (),
    allow_pickle: bool = False,
    online_store: Callable[[], Any] | None = None,
) -> ModelHandle:
    """Download, load and warm up version ``version`` of ``ref``'s model.

    Loaders registered with :func:`register_model_loader` are tried first, then the
    feature-aware one (:mod:`lakeloom.deployment.feature_serving`), then :class:`PyfuncHandle`.
    """
    import mlflow.artifacts
    from mlflow.models import Model

    from lakeloom.deployment.feature_serving import load_feature_aware

    uri = f"models:/{ref.name}/{version}"
    folder = Path(tempfile.mkdtemp(prefix="lakeloom-serve-"))
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri,
                dst_path=str(folder),
                tracking_uri=tracking.tracking_uri,
                registry_uri=tracking.registry_uri,
            )
        )
        mlmodel = Model.load(str(local / "MLmodel"))
        request = LoadRequest(
            ref.name, version, local, mlmodel, tuple(trusted_types), allow_pickle, online_store
        )
        handle: ModelHandle | None = None
        for loader in [*_LOADERS, load_feature_aware, PyfuncHandle]:
            handle = loader(request)
            if handle is not None:
                break
        assert handle is not None
        handle.warm_up()
    except LakeloomError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelLoadError(f"cannot serve {uri}: {exc}") from None
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(f"cannot serve {uri}: {type(exc).__name__}: {first}") from exc
    # The folder lives as long as the handle (some pyfunc models read their files lazily).
    weakref.finalize(handle, shutil.rmtree, str(folder), True)
    return handle


class ModelSlot:
    """The handle served for one model URI, swapped atomically when its alias moves."""

    def __init__(self, ref: ModelRef, handle: ModelHandle) -> None:
        self.ref = ref
        self.handle = handle
        #: The last reload that failed: (version, one-line reason, when), else None.
        self.failure: tuple[int, str, float] | None = None
        self.loaded_at = time.time()
        # The previous handle stays loaded, so a rollback to it is instant.
        self._previous: ModelHandle | None = None
        self._lock = threading.Lock()

    def swap(self, handle: ModelHandle) -> ModelHandle:
        """Serve ``handle`` from now on; returns the handle it replaces."""
        with self._lock:
            old = self.handle
            self.handle = handle
            self._previous = old
            self.failure = None
            self.loaded_at = time.time()
        return old

    def cached(self, version: int) -> ModelHandle | None:
        """The previous handle, if it is ``version`` (a rollback needs no download)."""
        prev = self._previous
        return prev if prev is not None and prev.version == version else None

    def should_retry(self, version: int, retry_after_s: float) -> bool:
        """Whether to try ``version`` again (a failed version is retried after a while)."""
        failure = self.failure
        if failure is None or failure[0] != version:
            return True
        return time.time() - failure[2] >= retry_after_s

    def status(self) -> dict[str, Any]:
        """What ``/ready`` shows for this slot."""
        handle = self.handle
        schema = handle.input_schema
        out: dict[str, Any] = {
            "model": self.ref.uri,
            "name": handle.name,
            "version": handle.version,
            "loaded_at": self.loaded_at,
            "inputs": schema.to_dict() if schema is not None else None,
        }
        extra = getattr(handle, "status", None)
        if callable(extra):
            out.update(extra())
        if self.failure is not None:
            version, reason, when = self.failure
            out["reload_error"] = {"version": version, "error": reason, "at": when}
        return out
