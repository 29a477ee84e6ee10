"""Step kinds that bring data in: ``generate_churn`` (synthetic) and ``load`` (a file)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lakeloom.datasets import generate_churn
from lakeloom.errors import InvalidArgument, InvalidTableName
from lakeloom.lakehouse.files import load_file
from lakeloom.lakehouse.names import parse_table_name
from lakeloom.pipelines.steps import StepContext, TableVersion, step_kind

if TYPE_CHECKING:
    from lakeloom.workspace import Workspace

__all__ = ["GenerateChurnParams", "LoadParams", "generate_churn_step", "load_step", "write_churn"]


def write_churn(
    ws: Workspace,
    *,
    customers: int,
    seed: int,
    as_of: datetime.date | None = None,
    schema: str = "raw",
) -> list[TableVersion]:
    """Generate the churn data set and overwrite its four tables in ``schema``."""
    parse_table_name(f"{schema}.customers")
    try:
        data = (
            generate_churn(customers, seed=seed)
            if as_of is None
            else generate_churn(customers, seed=seed, as_of=as_of)
        )
    except ValueError as exc:
        raise InvalidArgument(f"cannot generate churn data: {exc}") from None
    written = []
    for name, table in data.tables().items():
        target = f"{schema}.{name.split('.', 1)[1]}"
        version = ws.tables.write(target, table, mode="overwrite", schema_mode="overwrite")
        written.append(TableVersion(target, version))
    return written


@dataclass(frozen=True)
class GenerateChurnParams:
    """Keys of a ``generate_churn`` step."""

    customers: int = 5000
    seed: int = 42
    #: Snapshot date: orders lie in the two years before it, labels in the 90 days before it.
    as_of: datetime.date | None = None
    #: Schema the four tables go to (``<schema>.customers``, ``.orders``, ...).
    schema: str = "raw"

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError(f"key 'customers' must be at least 1, got {self.customers}")
        try:
            parse_table_name(f"{self.schema}.customers")
        except InvalidTableName:
            raise ValueError(f"key 'schema' is not a valid schema name: {self.schema!r}") from None


@step_kind("generate_churn")
def generate_churn_step(ctx: StepContext, params: GenerateChurnParams) -> str | None:
    """Generate synthetic churn data: customers, orders, churn_labels, new_customers."""
    written = write_churn(
        ctx.workspace,
        customers=params.customers,
        seed=params.seed,
        as_of=params.as_of,
        schema=params.schema,
    )
    for out in written:
        ctx.wrote(out.table, out.version)
    return f"{params.customers:,} customers into {params.schema}.*"


@dataclass(frozen=True)
class LoadParams:
    """Keys of a ``load`` step."""

    #: A file under the workspace's Files/ folder, or an absolute local path.
    path: str
    table: str
    format: Literal["csv", "parquet", "json"] | None = None
    mode: Literal["overwrite", "append"] = "overwrite"

    def __post_init__(self) -> None:
        try:
            parse_table_name(self.table)
        except InvalidTableName as exc:
            raise ValueError(f"key 'table': {exc}") from None


@step_kind("load")
def load_step(ctx: StepContext, params: LoadParams) -> str | None:
    """Load a CSV, Parquet or JSON file into a table; rows that do not fit are reported."""
    ws = ctx.workspace
    report = load_file(
        ws.tables, ws.files_dir, params.path, params.table, format=params.format, mode=params.mode
    )
    ctx.wrote(report.table, report.version)
    rejected = f", {report.rows_rejected:,} rejected" if report.rows_rejected else ""
    return f"{report.rows_loaded:,} rows{rejected} into {report.table} v{report.version}"
