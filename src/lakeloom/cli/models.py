"""``lakeloom models ...``: the registry, aliases and their history, and the promotion gate."""

from __future__ import annotations

from typing import Any

import click

from lakeloom.cli.output import kv_table, out_console, print_json, rows_table
from lakeloom.cli.state import common_options, get_state

__all__ = ["models"]


def _when(value: Any) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else None


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


@click.group(short_help="Registered models, aliases, history, rollback and the gate.")
@common_options
def models() -> None:
    """The model registry: versions, aliases (never stages), their history, the gate."""


@models.command("register")
@click.option("--name", required=True, help="Registered model name (created if new).")
@click.option("--run", "run_id", default=None, metavar="RUN_ID", help="The run to register.")
@click.option("--best", is_flag=True, help="Register the best run of --experiment.")
@click.option("--experiment", default=None, metavar="NAME", help="With --best.")
@click.option("--metric", default=None, help="With --best: rank by this metric.")
@click.option("--description", default=None)
@common_options
def register(
    name: str,
    run_id: str | None,
    best: bool,
    experiment: str | None,
    metric: str | None,
    description: str | None,
) -> None:
    """Register a run's model as a new version: --run RUN_ID, or --best --experiment E."""
    if bool(run_id) == best:
        raise click.UsageError("pass --run RUN_ID or --best --experiment NAME (one of them)")
    state = get_state()
    info = state.open().registry.register(
        run_id,
        name=name,
        best=best,
        experiment=experiment,
        metric=metric,
        description=description,
    )
    if state.json:
        print_json(info.to_dict())
        return
    out_console().print(
        kv_table(
            {
                "registered": f"{info.name} v{info.version}",
                "model": info.tags.get("lakeloom.model"),
                "run": info.run_id,
                "uri": info.uri,
                "promote": f"lakeloom models promote {info.name} --version {info.version} "
                "--alias production --reason ...",
            }
        )
    )


@models.command("list")
@common_options
def list_models() -> None:
    """List registered models with their latest version and aliases."""
    state = get_state()
    found = state.open().registry.list()
    if state.json:
        print_json([m.to_dict() for m in found])
        return
    rows = [
        [
            m.name,
            m.latest_version,
            ", ".join(f"{a}=v{v}" for a, v in m.aliases.items()) or "-",
            _when(m.updated),
        ]
        for m in found
    ]
    out_console().print(rows_table(["name", "latest", "aliases", "updated"], rows))


@models.command("show")
@click.argument("name")
@common_options
def show(name: str) -> None:
    """Show a model's versions (newest first), their aliases, runs and metrics."""
    state = get_state()
    details = state.open().registry.show(name)
    if state.json:
        print_json(details.to_dict())
        return
    metric = next(
        (v.tags["lakeloom.metric"] for v in details.versions if "lakeloom.metric" in v.tags),
        None,
    )
    rows = [
        [
            v.version,
            ", ".join(v.aliases) or "-",
            v.tags.get("lakeloom.model"),
            v.metrics.get(metric) if metric else None,
            v.run_id,
            _when(v.created),
        ]
        for v in details.versions
    ]
    out_console().print(
        rows_table(
            ["version", "aliases", "model", metric or "metric", "run_id", "created"],
            rows,
            title=f"{name}: {len(details.versions)} version(s)",
        )
    )


@models.command("promote")
@click.argument("name")
@click.option("--version", "version", required=True, type=int, metavar="N")
@click.option("--alias", default="production", show_default=True)
@click.option("--reason", default="", help="Why (recorded in the alias history).")
@click.option("--stage", default=None, hidden=True)
@common_options
def promote(name: str, version: int, alias: str, reason: str, stage: str | None) -> None:
    """Point ALIAS of NAME at version N (recorded in lakeloom.alias_history)."""
    state = get_state()
    event = state.open().registry.promote(name, version, alias, reason=reason, stage=stage)
    if state.json:
        print_json({"changed": event is not None, "event": event.to_dict() if event else None})
        return
    if event is None:
        click.echo(f"{name}@{alias} already points at v{version}: nothing to do")
        return
    click.echo(
        f"{name}@{alias}: {_v(event.from_version)} -> {_v(event.to_version)} "
        f"(event {event.seq}, by {event.user})"
    )


@models.command("rollback")
@click.argument("name")
@click.option("--alias", default="production", show_default=True)
@click.option("--reason", default="", help="Why (recorded in the alias history).")
@common_options
def rollback(name: str, alias: str, reason: str) -> None:
    """Point ALIAS back at the version it pointed at before its last move."""
    state = get_state()
    event = state.open().registry.rollback(name, alias, reason=reason)
    if state.json:
        print_json(event.to_dict())
        return
    click.echo(
        f"{name}@{alias} rolled back: {_v(event.from_version)} -> {_v(event.to_version)} "
        f"(event {event.seq})"
    )


@models.command("history")
@click.argument("name")
@click.option("--alias", default=None, help="Only this alias.")
@common_options
def history(name: str, alias: str | None) -> None:
    """Every alias move of NAME: when, who, alias, from, to, kind and why (oldest first).

    Moves made with plain MLflow calls are detected and recorded as `external`.
    """
    state = get_state()
    events = state.open().registry.history(name, alias)
    if state.json:
        print_json([e.to_dict() for e in events])
        return
    if not events:
        click.echo(f"no alias moves recorded for {name}")
        return
    rows = [
        [
            _when(e.at),
            e.user,
            e.alias,
            _v(e.from_version),
            _v(e.to_version),
            e.kind + ("" if e.moved or e.kind != "gate" else " (refused)"),
            e.reason,
        ]
        for e in events
    ]
    out_console().print(
        rows_table(["at (UTC)", "user", "alias", "from", "to", "kind", "reason"], rows)
    )


@models.command("gate")
@click.argument("name")
@click.option("--candidate", required=True, type=int, metavar="N", help="Version to promote.")
@click.option("--alias", default="production", show_default=True)
@click.option("--holdout", required=True, metavar="SCHEMA.TABLE", help="Rows to score on.")
@click.option("--metric", default=None, help="[default: the metric the model was trained for]")
@click.option("--min-improvement", type=float, default=0.0, show_default=True)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Absolute bar the candidate must pass (decides alone for a first version).",
)
@click.option("--label", default=None, help="[default: the label the model was trained on]")
@click.option("--reason", default="", help="Prefix of the recorded reason (e.g. a CI run).")
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="MODULE.TYPE",
    help="Also load models containing this type (for models you trust). Repeatable.",
)
@common_options
def gate(
    name: str,
    candidate: int,
    alias: str,
    holdout: str,
    metric: str | None,
    min_improvement: float,
    threshold: float | None,
    label: str | None,
    reason: str,
    trusted: tuple[str, ...],
) -> None:
    """Promote version N to ALIAS only if it beats the current holder on HOLDOUT.

    Exit code 0: promoted; 1: not promoted; 2: error (nothing recorded).
    """
    state = get_state()
    result = state.open().registry.gate(
        name,
        candidate=candidate,
        holdout=holdout,
        alias=alias,
        metric=metric,
        min_improvement=min_improvement,
        threshold=threshold,
        label=label,
        reason=reason,
        trusted_types=trusted,
    )
    if state.json:
        print_json(result.to_dict())
    else:
        current = (
            f"v{result.current} {result.current_value:.4f}"
            if result.current is not None and result.current_value is not None
            else "none"
        )
        out_console().print(
            kv_table(
                {
                    "decision": result.decision.upper(),
                    "reason": result.reason,
                    f"candidate {result.metric}": f"v{result.candidate} "
                    f"{result.candidate_value:.4f}",
                    f"current {result.metric}": current,
                    "holdout": f"{result.holdout} v{result.holdout_version} "
                    f"({result.holdout_rows} rows)",
                    "gate run": result.run_id,
                },
                title=f"gate {name}@{alias}",
            )
        )
    if not result.promoted:
        raise click.exceptions.Exit(1)
