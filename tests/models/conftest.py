"""Small in-memory data for the model-layer tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def mixed_frame() -> pd.DataFrame:
    """Numeric, string, boolean, date and id columns, with missing values, and labels."""
    rng = np.random.default_rng(7)
    n = 400
    z = rng.normal(size=n)
    plan = np.where(z > 0.6, "basic", rng.choice(["basic", "standard", "premium"], n))
    income = np.where(rng.random(n) < 0.05, np.nan, 50 - 8 * z + rng.normal(0, 5, n))
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "plan": pd.Series(plan, dtype="str").where(rng.random(n) > 0.05),
            "income": income,
            "calls": rng.poisson(np.clip(2 + z, 0.1, None)).astype(np.int32),
            "opt_in": rng.random(n) < 0.5,
            "signup": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
            "churned": (z + rng.normal(0, 0.7, n) > 0.5).astype(np.int32),
            "segment": np.array(["a", "b", "c"])[np.digitize(z, [-0.4, 0.4])],
            "spend": 100 + 30 * z + rng.normal(0, 5, n),
        }
    )
