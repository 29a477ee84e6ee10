"""How many threads a fit's models use.

LightGBM and XGBoost run OpenMP threads that spin while they wait for each other: on cores
that other processes keep busy, a fit on every core can be ten times slower than the same
fit on one thread (measured here: LightGBM on scikit-learn's digits, 2 cores under load ~10,
62 s on 2 threads against 2-4 s on one). So ``n_jobs=-1`` means the cores that are idle
when the fit starts, not all of them.
"""

from __future__ import annotations

import os

__all__ = ["effective_n_jobs"]


def effective_n_jobs(n_jobs: int) -> int:
    """Threads for ``n_jobs``: a positive value as given; ``-1`` the idle cores (at least 1).

    Negative values count from the machine's cores as in scikit-learn (``-2``: all but one),
    and are then capped by the cores the 1-minute load average leaves idle.

    >>> effective_n_jobs(3)
    3
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        from lakeloom.errors import InvalidArgument

        raise InvalidArgument(f"n_jobs must be a positive integer or negative, got {n_jobs!r}")
    if n_jobs > 0:
        return n_jobs
    cores = os.cpu_count() or 1
    wanted = max(1, cores + 1 + n_jobs)
    try:
        busy = os.getloadavg()[0]
    except OSError:  # not available on this platform
        busy = 0.0
    idle = round(cores - busy)
    return max(1, min(wanted, idle))
