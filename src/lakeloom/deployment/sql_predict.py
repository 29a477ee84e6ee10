"""``predict`` in SQL, as Fabric's ``PREDICT``: ``predict('churn_model@production', *)``.

::

    lakeloom sql "select customer_id, predict('churn_model@production', *) as p
                  from raw.new_customers"

Supported forms (the model is a string literal: a registry URI, ``NAME@ALIAS`` or
``NAME/VERSION``):

* ``predict('<model>', *)``: every column of the ``FROM`` clause goes to the model, which
  takes the ones it needs (by name);
* ``predict('<model>', col1, col2, ...)``: only these columns (by name).

The call returns the prediction (a classifier's class, else the model's value). Each model
named in a query is resolved and loaded once per query. The engines call it as a Python
function (DuckDB: rows packed as JSON, so column types follow JSON's; Spark: a pandas UDF
on the executors). Spark ML models are scored by ``lakeloom score`` on the spark engine,
not here.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pyarrow as pa

from lakeloom.deployment.batch_model import LoadedModel
from lakeloom.deployment.model_source import (
    classes_of,
    download_model,
    model_columns,
    resolve_model,
    signature_output_type,
)
from lakeloom.engines.base import RowFunction, SqlFunction
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.tracking.store import TrackingConfig

__all__ = ["RowPredictor", "predict_function"]


class RowPredictor:
    """Predictions for rows of named columns (pickles for Spark, like batch scoring)."""

    def __init__(
        self, model: LoadedModel, columns: list[str] | None, classes: list[Any] | None
    ) -> None:
        self.model = model
        self.columns = columns
        self.classes = classes

    def __call__(self, rows: pa.Table) -> pa.Array:
        """One prediction per row of ``rows``."""
        import numpy as np

        names = self.columns or rows.column_names
        missing = [c for c in names if c not in rows.column_names]
        if missing:
            raise SchemaMismatch(
                f"predict() got no column(s) {', '.join(map(repr, missing))} that the model "
                f"takes; it got {', '.join(rows.column_names)}"
            )
        frame = rows.select(names).to_pandas()
        model = self.model.model
        if self.classes is not None:
            proba = np.asarray(model.predict_proba(frame))
            return pa.array(self.classes).take(pa.array(np.argmax(proba, axis=1)))
        values = np.asarray(model.predict(frame))
        return pa.array(values[:, 0] if values.ndim == 2 else values)


def predict_function(tracking: TrackingConfig) -> SqlFunction:
    """The ``predict`` SQL function, resolving model URIs in ``tracking``'s registry."""

    def bind(key: str) -> RowFunction:
        from mlflow.models import Model

        resolved = resolve_model(tracking, key)
        # The folder lives as long as the query's function (the process, at most).
        folder = download_model(tracking, resolved, tempfile.mkdtemp(prefix="lakeloom-sql-"))
        mlmodel = Model.load(str(folder / "MLmodel"))
        if "spark" in mlmodel.flavors:
            raise InvalidArgument(
                f"{resolved.uri} is a Spark ML model; score it with `lakeloom score` on the "
                "spark engine"
            )
        loaded = LoadedModel(str(folder), (), f"model {resolved.uri}")
        model = loaded.model
        columns = model_columns(model, mlmodel)
        classes = classes_of(model)
        typ = pa.array(classes).type if classes is not None else signature_output_type(mlmodel)
        return RowFunction(RowPredictor(loaded, columns, classes), typ)

    return SqlFunction("predict", bind)
