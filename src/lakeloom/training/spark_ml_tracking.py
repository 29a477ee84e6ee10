"""The Spark ML model of a training run: saved by Spark, logged as an ``mlflow.spark`` model.

The model is logged as an ``mlflow.spark`` model (a ``sparkml`` folder, an ``MLmodel`` with
the spark and pyfunc flavors, a signature and an input example) built from the folder Spark
saved it in. ``mlflow.spark.log_model`` would copy that folder through the JVM's Hadoop
client, which a Spark Connect client does not have; reading Spark's own save works for both.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lakeloom.errors import LakeloomError, TrackingError
from lakeloom.tracking.runs import using_tracking
from lakeloom.tracking.store import TrackingConfig
from lakeloom.training.run_logging import first_line

if TYPE_CHECKING:
    pass

__all__ = ["log_spark_model", "save_spark_model"]

MODEL_ARTIFACT = "model"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text.strip())[:80]


def save_spark_model(model: Any, save_to: str, experiment: str, name: str, run_id: str) -> str:
    """Save ``model`` with Spark under ``save_to``; returns where (as given, not Hadoop's)."""
    from lakeloom.engines.spark_delta import spark_write_path

    uri = "/".join([save_to.rstrip("/"), _slug(experiment), name, run_id])
    model.write().overwrite().save(spark_write_path(uri))
    return uri


def _requirements() -> list[str]:
    out = []
    for package in ("pyspark", "mlflow"):
        try:
            out.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(package)
    return out


class _SavedSparkFlavor:
    """An ``mlflow.spark`` model built from a folder Spark already saved (see ``_log_model``)."""

    __name__ = "mlflow.spark"

    @staticmethod
    def save_model(
        path: str,
        mlflow_model: Any,
        spark_model: Any,
        saved_dir: str,
        signature: Any,
        input_example: Any,
        pip_requirements: list[str],
        **_: Any,
    ) -> None:
        import mlflow.spark

        Path(path).mkdir(parents=True, exist_ok=True)
        _copy_tree(saved_dir, str(Path(path) / "sparkml"))
        mlflow.spark._save_model_metadata(  # the flavor's own MLmodel, env and example
            dst_dir=path,
            spark_model=spark_model,
            mlflow_model=mlflow_model,
            conda_env=None,
            code_paths=None,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements,
        )


def _copy_tree(source: str, dest: str) -> None:
    if "://" not in source or source.startswith("file://"):
        shutil.copytree(source.removeprefix("file://"), dest)
        return
    from pyarrow import fs as pafs

    filesystem, root = pafs.FileSystem.from_uri(source)
    pafs.copy_files(root, dest, source_filesystem=filesystem)


def log_spark_model(
    tracking: TrackingConfig,
    run_id: str,
    model: Any,
    example: pd.DataFrame,
    *,
    spark: Any,
    name: str,
    saved: str | None,
) -> str:
    """Log ``model`` to run ``run_id`` as an ``mlflow.spark`` model; returns its model URI.

    The folder is Spark's own save at ``saved`` (or a temporary one). With Spark Connect,
    ``saved`` must be a folder both the server and this process reach (the workspace).
    """
    from mlflow.models import Model, infer_signature

    scored = model.transform(spark.createDataFrame(example)).select("prediction")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyspark about pandas 3
        predictions = scored.toPandas()["prediction"]
    signature = infer_signature(example, predictions)
    tmp = None
    try:
        source = saved
        if source is None:
            tmp = tempfile.mkdtemp(prefix="lakeloom-sparkml-")
            source = str(Path(tmp) / "model")
            model.write().overwrite().save(source)
        with using_tracking(tracking):
            info = Model.log(
                artifact_path=None,
                name=MODEL_ARTIFACT,
                flavor=_SavedSparkFlavor,
                run_id=run_id,
                spark_model=model,
                saved_dir=source,
                signature=signature,
                input_example=example,
                pip_requirements=_requirements(),
                metadata={"lakeloom_model": name, "lakeloom_engine": "spark"},
                validate_serving_input=False,
            )
    except LakeloomError:
        raise
    except Exception as exc:
        raise TrackingError(
            f"cannot log the Spark {name} model to MLflow: {first_line(exc)}"
        ) from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(info.model_uri)
