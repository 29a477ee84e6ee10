"""The time budget of one AutoML fit, and the FLAML search inside it.

Budget accounting: the user's limit covers the whole ``fit``. lakeloom's own work before
the search (loading, featurizing, starting the MLflow run) is measured; its work after the
search (refitting the winner on all rows, ensembling, logging the model and charts) is
reserved up front: :data:`FINISH_RESERVE_S` for logging and a share (:data:`REFIT_SHARE`) of
what is left for refit and ensembling. FLAML gets the rest, less its own measured overrun
(:data:`FLAML_OVERRUN_S`). After the search, the refit and ensemble phase only
takes candidates whose measured training time fits in the time actually left (see
:mod:`lakeloom.automl.finalize`). A limit that leaves less than :data:`MIN_SEARCH_S` for the
search raises :class:`~lakeloom.errors.TimeLimitTooSmall`.

Reproducibility: with a trial count and no time limit, the same seed gives the same trials
(FLAML's search is seeded, and so are the models). With a time limit, how many trials fit
depends on the machine's speed, so results can differ between runs; LightGBM and XGBoost on
several threads can also differ in the last digits.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lakeloom.errors import AutoMLError, TimeLimitTooSmall
from lakeloom.settings import SparkSettings

__all__ = [
    "FINISH_RESERVE_S",
    "FLAML_OVERRUN_S",
    "MIN_SEARCH_S",
    "REFIT_SHARE",
    "Budget",
    "SearchResult",
    "Trial",
    "TrialLogTail",
    "available_learners",
    "check_spark_trials",
    "decide_eval_method",
    "new_automl",
    "run_search",
]

#: Seconds kept for logging the model, charts, leaderboard and the parent run.
FINISH_RESERVE_S = 4.0
#: Share of the time left after loading and featurizing kept for refit and ensembling.
REFIT_SHARE = 0.15
#: The shortest search worth starting.
MIN_SEARCH_S = 1.0
#: FLAML's search ends this much after its budget (its set-up, and the last trial, which
#: it does not interrupt), measured here at 2-3 s for budgets of 10-60 s; at most a tenth
#: of the search is handed back for it.
FLAML_OVERRUN_S = 2.5

#: FLAML's learners lakeloom searches by default (those whose packages are installed).
DEFAULT_LEARNERS = ("lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "lrl1", "catboost")
_OPTIONAL = {"catboost": "catboost", "xgboost": "xgboost", "xgb_limitdepth": "xgboost"}
#: lakeloom's family names (``--models`` everywhere) for FLAML's learners.
_ALIASES = {
    "lightgbm": "lgbm",
    "random_forest": "rf",
    "extra_trees": "extra_tree",
    "logistic_regression": "lrl1",
}


@dataclass
class Budget:
    """Wall-clock accounting for one fit; ``limit`` None means the trial count alone ends it."""

    limit: float | None
    start: float = field(default_factory=time.monotonic)
    phases: dict[str, float] = field(default_factory=dict)

    def elapsed(self) -> float:
        """Seconds since the fit started."""
        return time.monotonic() - self.start

    def remaining(self) -> float:
        """Seconds left (infinite without a limit)."""
        return math.inf if self.limit is None else self.limit - self.elapsed()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record how long a phase of the fit took."""
        began = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - began

    def search_seconds(self, finish_reserve: float = FINISH_RESERVE_S) -> float | None:
        """The time FLAML may search: the limit minus time spent and time reserved.

        Raises TimeLimitTooSmall when that leaves less than :data:`MIN_SEARCH_S`.
        """
        if self.limit is None:
            return None
        spent = self.elapsed()
        available = self.limit - spent - finish_reserve
        search = available * (1.0 - REFIT_SHARE)
        search -= min(FLAML_OVERRUN_S, 0.1 * search)
        if search < MIN_SEARCH_S:
            needed = spent + finish_reserve + MIN_SEARCH_S / 0.9 / (1.0 - REFIT_SHARE)
            raise TimeLimitTooSmall(
                f"time limit of {self.limit:g}s is too small for even one trial: loading, "
                f"featurizing and starting the MLflow run took {spent:.1f}s and lakeloom "
                f"keeps {finish_reserve:.1f}s to log the model and a share to refit it; "
                f"give at least {math.ceil(needed)}s "
                f"(time_limit_minutes={math.ceil(needed) / 60:.2f})"
            )
        self.phases["search_budget"] = search
        return search

    def report(self) -> dict[str, float | None]:
        """The limit, the phases' durations, the total and the overrun (seconds)."""
        total = self.elapsed()
        overrun = None if self.limit is None else total - self.limit
        return {"limit": self.limit, **self.phases, "total": total, "overrun": overrun}


@dataclass(frozen=True)
class Trial:
    """One FLAML trial as read from its training log."""

    number: int
    learner: str
    config: dict[str, Any]
    loss: float
    train_time: float
    wall_clock: float
    sample_size: int

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Trial:
        """Parse a line of FLAML's JSON training log."""
        config = record["config"]
        # A parallel (Spark) search logs the learner in the config, and with several
        # learners nests each one's hyperparameters under "ml".
        config = config.get("ml", config)
        config = {k: v for k, v in config.items() if not k.startswith("FLAML_") and k != "learner"}
        return cls(
            number=int(record["record_id"]) + 1,
            learner=str(record["learner"]),
            config=config,
            loss=float(record["validation_loss"]),
            train_time=float(record["trial_time"]),
            wall_clock=float(record["wall_clock_time"]),
            sample_size=int(record.get("sample_size") or 0),
        )


@dataclass
class SearchResult:
    """What the search found."""

    trials: list[Trial]
    eval_method: str
    n_splits: int
    seconds: float
    task: Any  # FLAML's Task object, to build estimators from configs

    @property
    def best(self) -> Trial:
        """The trial with the lowest loss (the earliest on ties)."""
        return min(self.trials, key=lambda t: (t.loss, t.number))

    def best_per_learner(self) -> list[Trial]:
        """Each learner's best trial, best first."""
        best: dict[str, Trial] = {}
        for t in self.trials:
            if t.learner not in best or t.loss < best[t.learner].loss:
                best[t.learner] = t
        return sorted(best.values(), key=lambda t: (t.loss, t.number))


def new_automl() -> Any:
    """A fresh ``flaml.AutoML``, imported without the warning it triggers under pandas 3.

    FLAML imports ``pyspark.pandas`` when PySpark is installed, which warns (FutureWarning)
    that it does not fully support pandas 3; lakeloom does not use pyspark.pandas.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
        from flaml.automl.automl import AutoML

    return AutoML()  # type: ignore[no-untyped-call]


def available_learners(models: Sequence[str] | None, task: str) -> list[str]:
    """The FLAML learner names to search: ``models`` checked, or the installed defaults."""
    import importlib.util

    from lakeloom.errors import InvalidArgument

    names = (
        [_ALIASES.get(m, m) for m in models]
        if models
        else [
            m
            for m in DEFAULT_LEARNERS
            if m not in _OPTIONAL or importlib.util.find_spec(_OPTIONAL[m]) is not None
        ]
    )
    if task == "regression":
        names = [n for n in names if n not in ("lrl1", "lrl2")]
    known = {
        "lgbm",
        "xgboost",
        "xgb_limitdepth",
        "rf",
        "extra_tree",
        "lrl1",
        "lrl2",
        "catboost",
        "kneighbor",
        "sgd",
        "svc",
        "enet",
        "lassolars",
        "histgb",
    }
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise InvalidArgument(
            f"unknown model(s) {', '.join(unknown) or '(none given)'}; FLAML's learners are "
            f"{', '.join(sorted(known))}"
        )
    missing = [
        n for n in names if n in _OPTIONAL and importlib.util.find_spec(_OPTIONAL[n]) is None
    ]
    if missing:
        raise InvalidArgument(f"model(s) {', '.join(missing)} need packages not installed")
    return names


#: LightGBM's own defaults in FLAML's search space (max_bin 255; FLAML's smallest
#: regularisation for LightGBM's 0).
LGBM_DEFAULTS = {
    "n_estimators": 100,
    "num_leaves": 31,
    "min_child_samples": 20,
    "learning_rate": 0.1,
    "log_max_bin": 8,
    "colsample_bytree": 1.0,
    "reg_alpha": 1 / 1024,
    "reg_lambda": 1 / 1024,
}


def starting_points(X: pd.DataFrame, learners: Sequence[str]) -> dict[str, dict[str, Any]]:
    """LightGBM's search starts from LightGBM's own defaults.

    FLAML otherwise starts every learner from a tiny, cheap configuration (4 trees), which on
    a short budget or a slow machine can leave the winner weaker than an untuned LightGBM.
    LightGBM stops at the trial's time budget, so this start cannot overrun it; the other
    learners keep FLAML's cheap starts (forests cannot be interrupted). FLAML's zero-shot
    suggestions were tried too: they are often thousands of trees, too slow for short runs.
    """
    if "lgbm" not in learners or len(X) < 20:
        return {}
    point: dict[str, Any] = dict(LGBM_DEFAULTS)
    # Keep inside FLAML's data-dependent search space.
    point["num_leaves"] = int(min(point["num_leaves"], max(4, len(X) // 2)))
    point["min_child_samples"] = int(min(point["min_child_samples"], max(2, len(X) // 10)))
    return {"lgbm": point}


def decide_eval_method(rows: int, columns: int, search_seconds: float | None) -> str:
    """FLAML's own rule: cross-validation while the data is small for the budget."""
    budget = 3600.0 if search_seconds is None else search_seconds
    return "cv" if rows * columns / 0.9 < 1e7 * budget / 3600 and rows < 100_000 else "holdout"


class TrialLogTail(threading.Thread):
    """Reads FLAML's training log while the search writes it, one trial at a time."""

    def __init__(self, path: Path, on_trial: Callable[[Trial], None]) -> None:
        super().__init__(name="lakeloom-automl-trials", daemon=True)
        self._path, self._on_trial = path, on_trial
        self._stop_event = threading.Event()
        self.trials: list[Trial] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        offset = 0
        buffer = ""
        while True:
            stopping = self._stop_event.is_set()
            if self._path.exists():
                with self._path.open() as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                    offset = fh.tell()
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    self._handle(line)
            if stopping:
                return
            self._stop_event.wait(0.2)

    def _handle(self, line: str) -> None:
        if not line.strip():
            return
        record = json.loads(line)
        if "record_id" not in record:
            return  # FLAML's checkpoint line
        trial = Trial.from_record(record)
        self.trials.append(trial)
        try:
            self._on_trial(trial)
        except Exception as exc:  # keep reading; the caller sees the first error
            self.error = self.error or exc

    def finish(self) -> list[Trial]:
        self._stop_event.set()
        self.join()
        return self.trials


#: The Spark job tag of FLAML's trials (``sparkContext.cancelJobsWithTag`` stops them all).
TRIALS_JOB_TAG = "lakeloom-automl-trials"
#: FLAML's variable for how many trials run at once on Spark.
_FLAML_CONCURRENCY = "FLAML_MAX_CONCURRENT"


def check_spark_trials(spark: SparkSettings | None) -> None:
    """Raise :class:`AutoMLError` unless FLAML's trials can run on ``spark``'s session
    (None: no Spark wanted). Cheap: it starts nothing, so a fit can call it first.
    """
    if spark is None:
        return
    if spark.remote:
        raise AutoMLError(
            f"use_spark=True needs a classic Spark session, not Spark Connect ({spark.remote}): "
            "FLAML runs its trials through the SparkContext; set spark.master instead of "
            "spark.remote, or fit with use_spark=False"
        )
    import importlib.util

    if importlib.util.find_spec("joblibspark") is None:
        raise AutoMLError(
            "use_spark=True runs FLAML's trials as Spark jobs, which needs the joblibspark "
            "package (pip install 'flaml[spark]'); or fit with use_spark=False"
        )


def _spark_options(spark: SparkSettings | None, owner: object) -> dict[str, Any]:
    """FLAML's options to run trials as Spark jobs on lakeloom's shared session."""
    if spark is None:
        return {}
    check_spark_trials(spark)
    from lakeloom.engines.spark_session import acquire

    # FLAML calls SparkSession.builder.getOrCreate(): start lakeloom's session first so that
    # the trials run on it (with the workspace's master and configuration).
    session = acquire(spark, owner)
    # No force_cancel: joblibspark 0.6 cancels jobs at the time limit, then fails inside
    # joblib 1.6 (Parallel has no _backend_args), which would end the whole fit. Trials
    # finish instead, as the last one does on the sequential path.
    return {"use_spark": True, "n_concurrent_trials": _trial_slots(session), "force_cancel": False}


def _trial_slots(session: Any) -> int:
    """How many trials run at once: one per task slot, and never fewer than two.

    joblib runs a single job in the calling process (no Spark job at all), so even a
    one-slot session gets two: Spark then runs the trials' jobs one after the other.
    """
    return max(2, int(session.sparkContext.defaultParallelism))


@contextmanager
def _trials_on_spark(spark: SparkSettings | None, owner: object) -> Iterator[None]:
    """Around FLAML's fit: with ``spark``, its trials run as Spark jobs tagged
    :data:`TRIALS_JOB_TAG`, as many at once as the session has task slots.
    """
    with warnings.catch_warnings():
        if spark is None:
            yield
            return
        # joblibspark says so on every local[*] master; it changes nothing for FLAML.
        warnings.filterwarnings("ignore", message="Spark local mode doesn't support stage")
        # joblibspark 0.6 implements joblib's older apply_async, which joblib 1.6 still
        # calls through its new submit with a DeprecationWarning.
        warnings.filterwarnings("ignore", "`apply_async` is deprecated", DeprecationWarning)
        # joblibspark wraps its threads without naming the session; the job tag below is
        # a local property, which they inherit all the same.
        warnings.filterwarnings("ignore", "Spark session is not provided", UserWarning)
        # On a one-slot session lakeloom asks for two trials at once (see _trial_slots).
        warnings.filterwarnings("ignore", "User-specified n_jobs", UserWarning)
        from lakeloom.engines.spark_session import acquire

        session = acquire(spark, owner)  # already started by _spark_options
        context = session.sparkContext
        # FLAML sizes its joblib pool by the executors it counts, which is one on a local
        # master: joblib then runs every trial in this process, not on Spark. FLAML's own
        # override sets the pool to the session's task slots (unless the user set it).
        previous = os.environ.get(_FLAML_CONCURRENCY)
        if previous is None:
            os.environ[_FLAML_CONCURRENCY] = str(_trial_slots(session))
        # Jobs started by joblibspark's threads inherit this thread's tags.
        context.addJobTag(TRIALS_JOB_TAG)
        try:
            yield
        finally:
            context.removeJobTag(TRIALS_JOB_TAG)
            if previous is None:
                os.environ.pop(_FLAML_CONCURRENCY, None)


def run_search(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    task: str,
    metric: str,
    learners: Sequence[str],
    time_budget: float | None,
    max_iter: int | None,
    seed: int,
    n_jobs: int,
    log_dir: Path,
    spark: SparkSettings | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> SearchResult:
    """Run FLAML on featurized data; trials reach ``on_trial`` as they finish.

    With ``spark`` (the session's settings) trials run in parallel as Spark jobs.
    """

    eval_method = decide_eval_method(len(X), X.shape[1], time_budget)
    log_path = log_dir / "flaml_trials.jsonl"
    tail = TrialLogTail(log_path, on_trial or (lambda _t: None))
    automl = new_automl()
    from flaml.automl.task.factory import task_factory

    settings: dict[str, Any] = {
        "task": task,
        "metric": metric,
        "estimator_list": list(learners),
        "time_budget": -1 if time_budget is None else time_budget,
        "max_iter": max_iter,
        "eval_method": eval_method,
        "n_splits": 5,
        "seed": seed,
        "n_jobs": n_jobs,
        "log_file_name": str(log_path),
        "log_type": "all",
        "retrain_full": False,  # lakeloom refits (and ensembles) within the budget itself
        "skip_transform": True,  # the featurizer already made every column numeric
        "mlflow_logging": False,  # lakeloom logs trials with its own client
        "verbose": 0,
        "auto_augment": False,
        "starting_points": starting_points(X, learners) or "static",
        **_spark_options(spark, tail),
    }
    began = time.monotonic()
    tail.start()
    flaml_logger = logging.getLogger("flaml.automl.logger")
    level = flaml_logger.level
    try:
        with _trials_on_spark(spark, tail):
            automl.fit(X_train=X, y_train=y, **settings)
    finally:
        flaml_logger.setLevel(level)
        trials = tail.finish()
        if spark is not None:
            from lakeloom.engines.spark_session import release

            release(spark, tail)
    if tail.error is not None:
        raise tail.error
    if not trials:
        raise TimeLimitTooSmall(
            f"no trial finished within the search budget of {time_budget:.1f}s; raise the "
            "time limit"
            if time_budget is not None
            else "FLAML finished no trial"
        )
    return SearchResult(
        trials=trials,
        eval_method=eval_method,
        n_splits=5,
        seconds=time.monotonic() - began,
        task=task_factory(task, X, y),
    )
