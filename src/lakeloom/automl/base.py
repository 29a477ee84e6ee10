"""What every AutoML estimator shares: its checks, the tracked fit and the fitted answers.

:class:`AutoMLBase` is the common ground of ``AutoMLClassifier``, ``AutoMLRegressor`` and
``AutoMLForecaster``: scikit-learn's contract (a clone shares the workspace context), the
checks of the time limit and trial count, the MLflow parent run ended FAILED (or KILLED) with
the reason when a fit raises, the budget's phases logged when it ends, and the attributes the
course's code reads (``best_model``, ``best_model_name``, ``best_score``, ``best_run_id``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from lakeloom.automl.search import FINISH_RESERVE_S, MIN_SEARCH_S, Budget
from lakeloom.automl.tracking import AutoMLRun
from lakeloom.errors import InvalidArgument, TimeLimitTooSmall

__all__ = ["PHASES", "AutoMLBase"]

#: The phases of a fit whose durations are logged (seconds), in order.
PHASES = ("prepare", "tracking", "search", "backtest", "refit", "logging")


class AutoMLBase(BaseEstimator):  # type: ignore[misc]
    """Shared by the AutoML estimators; not meant to be used on its own."""

    time_limit_minutes: float | None
    n_trials: int | None

    def __sklearn_clone__(self) -> AutoMLBase:
        # The context is a handle on a workspace (open files, maybe a Spark session): a
        # clone shares it rather than deep-copying it.
        params = self.get_params(deep=False)
        context = params.pop("context")
        return type(self)(**copy.deepcopy(params), context=context)

    # -- checks ----------------------------------------------------------------------------
    def _limit_seconds(self) -> float | None:
        minutes = self.time_limit_minutes
        if minutes is None:
            if self.n_trials is None:
                raise InvalidArgument("give time_limit_minutes, n_trials or both")
            return None
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
            raise InvalidArgument(f"time_limit_minutes must be a positive number, got {minutes!r}")
        seconds = float(minutes) * 60.0
        if seconds < FINISH_RESERVE_S + MIN_SEARCH_S:
            raise TimeLimitTooSmall(
                f"time limit of {seconds:g}s is too small for even one trial: lakeloom keeps "
                f"{FINISH_RESERVE_S:g}s to log the model; give at least "
                f"{FINISH_RESERVE_S + MIN_SEARCH_S + 1:g}s"
            )
        return seconds

    def _check_trials(self) -> None:
        n = self.n_trials
        # FLAML treats a single iteration as "train the default, no search": no trial to
        # compare, log or ensemble.
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 2):
            raise InvalidArgument(f"n_trials must be an integer of at least 2, got {n!r}")

    # -- the tracked fit -------------------------------------------------------------------
    def _tracked(self, run: AutoMLRun, budget: Budget, body: Callable[[], None]) -> None:
        """Run ``body``; end ``run`` FINISHED with the budget's phases, or FAILED/KILLED."""
        try:
            body()
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            text = str(exc).strip()
            run.end(status, text.splitlines()[0] if text else None)
            raise
        report = budget.report()
        self.budget_ = report
        self.best_run_id_ = run.run_id
        run.log_metrics(
            {
                "fit_seconds": report["total"],
                "overrun_seconds": report["overrun"],
                **{f"{k}_seconds": v for k, v in report.items() if k in PHASES},
            }
        )
        run.end("FINISHED")

    # -- fitted attributes -----------------------------------------------------------------
    def _fitted(self) -> Any:
        model = getattr(self, "best_model_", None)
        if model is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit first")
        return model

    @property
    def best_model_name(self) -> str:
        """The winner: FLAML's learner name, an ``ensemble(...)``, a baseline's name..."""
        self._fitted()
        return str(self.best_model_name_)

    @property
    def best_score(self) -> float:
        """The winner's validation score (a forecaster's: its mean backtest error)."""
        self._fitted()
        return float(self.best_score_)

    @property
    def best_run_id(self) -> str:
        """The parent MLflow run of the fit, where the best model is logged."""
        self._fitted()
        return str(self.best_run_id_)
