"""The ``sklearn_dataset`` step kind: a data set bundled with scikit-learn, into a table.

Nothing is downloaded: these small data sets ship inside the scikit-learn package, which
makes them handy for examples, tutorials and tests of a pipeline before real data exists.

::

    [[steps]]
    name = "load"
    kind = "sklearn_dataset"
    dataset = "diabetes"          # diabetes | breast_cancer | wine | iris | digits
    table = "raw.diabetes"
    label = "target"              # the name of the column that holds the target
    id_column = "row_id"          # a 0-based row number, a key to split or join on

Column names are made SQL-friendly (``"mean radius"`` becomes ``mean_radius``). ``diabetes``
comes in its original units (age in years, sex 1 or 2, body-mass index, blood pressure and
six blood serum measurements; the target is a measure of disease progression one year
later), not scikit-learn's default mean-centred and scaled version.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from lakeloom.errors import InvalidArgument, InvalidTableName
from lakeloom.lakehouse.names import parse_table_name
from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = ["DATASETS", "SklearnDatasetParams", "load_sklearn_dataset", "sklearn_dataset_step"]


def _diabetes() -> Any:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False)


def _loader(name: str) -> Callable[[], Any]:
    def load() -> Any:
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{name}")(as_frame=True)

    return load


#: The bundled data sets by name: what each one is, and its loader.
DATASETS: dict[str, tuple[str, Callable[[], Any]]] = {
    "breast_cancer": (
        "569 tumours, 30 measurements, benign (1) or malignant (0)",
        _loader("breast_cancer"),
    ),
    "diabetes": ("442 patients, 10 measurements, disease progression (regression)", _diabetes),
    "digits": ("1,797 8x8 images of handwritten digits, 64 pixels, digit 0-9", _loader("digits")),
    "iris": ("150 flowers, 4 measurements, species 0-2", _loader("iris")),
    "wine": ("178 wines, 13 chemical measurements, cultivar 0-2", _loader("wine")),
}


def _column_name(name: str) -> str:
    """``"mean radius"`` -> ``mean_radius``, ``"sepal length (cm)"`` -> ``sepal_length_cm``."""
    clean = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return clean if clean and not clean[0].isdigit() else f"c_{clean}"


def load_sklearn_dataset(
    dataset: str, *, label: str = "target", id_column: str = "row_id"
) -> pa.Table:
    """The bundled scikit-learn data set ``dataset`` as an Arrow table.

    Columns: ``id_column`` (0-based row number), the features with SQL-friendly names, then
    ``label``.

    >>> load_sklearn_dataset("diabetes").num_rows
    442
    """
    if dataset not in DATASETS:
        raise InvalidArgument(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    bunch = DATASETS[dataset][1]()
    frame = bunch.frame.copy()
    target = bunch.target.name if hasattr(bunch.target, "name") else "target"
    renamed = {c: _column_name(str(c)) for c in frame.columns if c != target}
    taken = sorted({label, id_column} & set(renamed.values()))
    if taken:
        raise InvalidArgument(
            f"dataset {dataset!r} already has a feature column {taken[0]!r}; choose another "
            "name for the label or the id column"
        )
    frame = frame.rename(columns={**renamed, target: label})
    frame.insert(0, id_column, range(len(frame)))
    return pa.Table.from_pandas(frame, preserve_index=False)


@dataclass(frozen=True)
class SklearnDatasetParams:
    """Keys of a ``sklearn_dataset`` step."""

    #: Which bundled data set: breast_cancer, diabetes, digits, iris or wine.
    dataset: Literal["breast_cancer", "diabetes", "digits", "iris", "wine"]
    table: str
    #: The name of the target column.
    label: str = "target"
    #: A 0-based row number column (a key to split, join or look features up on).
    id_column: str = "row_id"
    mode: Literal["overwrite", "append"] = "overwrite"

    def __post_init__(self) -> None:
        try:
            parse_table_name(self.table)
        except InvalidTableName as exc:
            raise ValueError(f"key 'table': {exc}") from None
        for key in ("label", "id_column"):
            value = getattr(self, key)
            if not value.isidentifier():
                raise ValueError(
                    f"key {key!r} must be a column name (letters, digits, _): {value!r}"
                )
        if self.label == self.id_column:
            raise ValueError("keys 'label' and 'id_column' must name different columns")


@step_kind("sklearn_dataset")
def sklearn_dataset_step(ctx: StepContext, params: SklearnDatasetParams) -> str | None:
    """Load a data set bundled with scikit-learn (diabetes, wine, ...) into a table."""
    data = load_sklearn_dataset(params.dataset, label=params.label, id_column=params.id_column)
    ws = ctx.workspace
    version = ws.tables.write(
        params.table,
        data,
        mode=params.mode,
        schema_mode="overwrite" if params.mode == "overwrite" else None,
    )
    name = ".".join(parse_table_name(params.table))
    ctx.wrote(name, version)
    return f"{data.num_rows:,} rows of {params.dataset} into {name} v{version}"
