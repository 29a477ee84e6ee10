"""The ``score`` step kind: batch scoring of a table into a table (``ws.score_batch``).

::

    [[steps]]
    name = "score"
    kind = "score"
    model = "models:/churn_model@production"
    input_table = "raw.new_customers"
    output_table = "predictions.customer_churn"
    mode = "overwrite"                 # or "append", or "merge" (upsert on keys)
    # keys = ["customer_id"]           # default: the model's lookup keys, else the
                                       # input's columns the model does not take
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lakeloom.errors import InvalidTableName
from lakeloom.lakehouse.names import parse_table_name
from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = ["ScoreParams", "score_step"]


@dataclass(frozen=True)
class ScoreParams:
    """Keys of a ``score`` step."""

    model: str
    input_table: str
    output_table: str
    mode: Literal["overwrite", "append", "merge"] = "overwrite"
    keys: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ValueError("key 'model' must not be empty")
        for key in ("input_table", "output_table"):
            try:
                parse_table_name(getattr(self, key), allow_reserved=key == "input_table")
            except InvalidTableName as exc:
                raise ValueError(f"key {key!r}: {exc}") from None


@step_kind("score")
def score_step(ctx: StepContext, params: ScoreParams) -> str | None:
    """Score a table with a registered model into a table, in one commit."""
    ctx.used(params.input_table)
    result = ctx.workspace.score_batch(
        params.model,
        params.input_table,
        output_table=params.output_table,
        mode=params.mode,
        keys=params.keys,
    )
    ctx.wrote(result.output_table, result.version)
    rows = f"{result.rows:,} rows " if result.rows is not None else ""
    version = f" v{result.model_version}" if result.model_version is not None else ""
    return (
        f"{rows}scored by {result.model_name or result.model_uri}{version} "
        f"into {result.output_table} v{result.version}"
    )
