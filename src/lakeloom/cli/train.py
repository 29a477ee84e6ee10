"""``lakeloom train``: train models on a table, one MLflow child run per model, and compare."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any

import click

from lakeloom.cli.output import kv_table, out_console, print_json, rows_table
from lakeloom.cli.state import ENGINES, common_options, get_state
from lakeloom.errors import InvalidArgument

if TYPE_CHECKING:
    from lakeloom.training.train import TrainingResult
    from lakeloom.workspace import Workspace

__all__ = ["parse_hyperparameters", "train"]

_TASKS = ("auto", "classification", "binary", "multiclass", "regression")


def _value(text: str) -> Any:
    """A TOML value (50, 0.1, true, "x"); anything that is not TOML is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_hyperparameters(items: tuple[str, ...]) -> dict[str, Any]:
    """``n_estimators=50`` (every model that has it) or ``xgboost.max_depth=4`` (one model)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidArgument(
                f"--param {item!r} must be NAME=VALUE or MODEL.NAME=VALUE (n_estimators=50)"
            )
        model, dot, name = key.partition(".")
        if dot:
            out.setdefault(model, {})[name] = _value(text.strip())
        else:
            out[key] = _value(text.strip())
    return out


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@click.command(short_help="Train models on a table and compare them (MLflow runs).")
@click.option("--table", required=True, metavar="SCHEMA.TABLE", help="Training table.")
@click.option("--label", required=True, metavar="COLUMN", help="The column to predict.")
@click.option("--experiment", required=True, metavar="NAME", help="MLflow experiment.")
@click.option(
    "--models",
    default=None,
    metavar="A,B",
    help="Model families: logistic_regression, linear_regression, random_forest, xgboost, "
    "lightgbm; gbt on the spark engine [default: logistic_regression,random_forest "
    "(linear_regression for regression)].",
)
@click.option("--task", type=click.Choice(_TASKS), default="auto", show_default=True)
@click.option("--metric", default=None, help="Rank by this metric [default: roc_auc or rmse].")
@click.option("--test-size", type=float, default=0.2, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A hyperparameter: n_estimators=50 (every model that has it) or "
    "xgboost.max_depth=4 (one model). Repeatable.",
)
@click.option("--features", default=None, metavar="A,B", help="Only these feature columns.")
@click.option("--exclude", default=None, metavar="A,B", help="Leave these columns out.")
@click.option("--run-name", default=None, help="Name of the parent run.")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help="spark: Spark ML pipelines tuned by cross-validation [default: the workspace's].",
)
@click.option(
    "--cv",
    type=click.IntRange(min=0, max=20),
    default=None,
    help="Spark engine: cross-validation folds; 0 for one train/validation split [default: 3]. "
    "Grids: -p numTrees=[20,50].",
)
@common_options
def train(
    table: str,
    label: str,
    experiment: str,
    models: str | None,
    task: str,
    metric: str | None,
    test_size: float,
    seed: int,
    params: tuple[str, ...],
    features: str | None,
    exclude: str | None,
    run_name: str | None,
    engine: str | None,
    cv: int | None,
) -> None:
    """Train models on TABLE to predict LABEL; print them best first.

    One parent MLflow run, one child run per model with every hyperparameter, held-out
    metrics, plots, the data lineage and the model (which takes the table's raw columns).
    """
    state = get_state()
    hyper = parse_hyperparameters(params)
    if engine is not None:
        state.engine = engine
    ws = state.open()
    console = out_console() if not state.json else None
    if console is not None:
        click.echo(f"training {models or 'default models'} on {table} ...", err=True)
    if ws.settings.engine == "spark":
        result = _train_spark(
            ws, table, label, experiment, models, task, metric, test_size, seed, hyper,
            features, exclude, run_name, 3 if cv is None else cv,
        )  # fmt: skip
    elif cv is not None:
        raise InvalidArgument(
            "--cv is for the spark engine (Spark ML's CrossValidator); add --engine spark"
        )
    else:
        result = ws.train(
            table,
            label=label,
            experiment=experiment,
            models=models,
            test_size=test_size,
            seed=seed,
            params=hyper,
            task=None if task == "auto" else task,
            features=_split(features),
            exclude=_split(exclude) or (),
            metric=metric,
            run_name=run_name,
        )
    if state.json:
        print_json(result.to_dict())
        return
    assert console is not None
    ranked = result.ranked()
    metric_name = result.metric
    shown = ("accuracy", "f1", "f1_weighted", "log_loss", "rmse", "mae", "r2")
    extra = [m for m in shown if m != metric_name and any(m in r.metrics for r in ranked)][:3]
    rows = [
        [
            i,
            r.model,
            r.metrics.get(metric_name),
            *[r.metrics.get(m) for m in extra],
            round(r.training_seconds, 2),
            r.run_id,
        ]
        for i, r in enumerate(ranked, start=1)
    ]
    console.print(
        rows_table(
            ["rank", "model", metric_name, *extra, "train_s", "run_id"],
            rows,
            title=f"{result.task} models for {label!r} on {result.lineage.name}, best first",
        )
    )
    best = result.best()
    dropped = ", ".join(f"{k} ({v})" for k, v in result.features.dropped.items()) or "none"
    console.print(
        kv_table(
            {
                "experiment": f"{experiment} (parent run {result.parent_run_id})",
                "best": f"{best.model} {metric_name} {best.metrics[metric_name]:.4f}",
                "model": best.model_uri,
                "data": f"{result.lineage.name} v{result.lineage.version}, "
                f"{result.lineage.rows} rows",
                "not used": dropped,
                "register": f"lakeloom models register --run {best.run_id} --name NAME",
            }
        )
    )


def _train_spark(
    ws: Workspace,
    table: str,
    label: str,
    experiment: str,
    models: str | None,
    task: str,
    metric: str | None,
    test_size: float,
    seed: int,
    grid: dict[str, Any],
    features: str | None,
    exclude: str | None,
    run_name: str | None,
    cv: int,
) -> TrainingResult:
    """Spark ML on the spark engine: the same runs and result as ``ws.train``, tuned by CV."""
    from lakeloom.training.spark_ml import train_spark
    from lakeloom.training.train import TrainingContext

    return train_spark(
        TrainingContext(ws.tracking, ws.tables, ws.engine),
        table,
        label=label,
        experiment=experiment,
        models=models,
        cv=cv,
        test_size=test_size,
        seed=seed,
        params=grid,
        task=None if task == "auto" else task,
        features=_split(features),
        exclude=_split(exclude) or (),
        metric=metric,
        run_name=run_name,
        save_to=ws.storage.uri("Files", "models"),
    )
