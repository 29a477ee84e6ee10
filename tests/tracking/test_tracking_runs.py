"""Ranking runs: direction per metric and deterministic ties."""

from __future__ import annotations

from datetime import UTC, datetime

from lakeloom.tracking.runs import RunSummary, rank_key


def _run(run_id: str, value: float, start: int) -> RunSummary:
    return RunSummary(
        run_id=run_id,
        run_name=run_id,
        experiment_id="1",
        status="FINISHED",
        start_time=datetime.fromtimestamp(start, UTC),
        model=None,
        parent_run_id=None,
        metrics={"roc_auc": value, "log_loss": value},
    )


def test_ties_go_to_the_earlier_run_then_the_run_id() -> None:
    runs = [_run("c", 0.8, 30), _run("b", 0.9, 20), _run("a", 0.9, 20), _run("d", 0.9, 10)]
    assert [r.run_id for r in sorted(runs, key=rank_key("roc_auc"))] == ["d", "a", "b", "c"]
    assert [r.run_id for r in sorted(runs, key=rank_key("log_loss"))] == ["c", "d", "a", "b"]
    shuffled = list(reversed(runs))
    assert sorted(shuffled, key=rank_key("roc_auc")) == sorted(runs, key=rank_key("roc_auc"))
