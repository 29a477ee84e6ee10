"""Small data sets for the AutoML tests (all ship with installed packages or are generated)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from lakeloom.datasets import generate_churn


@pytest.fixture(scope="session")
def breast_cancer() -> pd.DataFrame:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.assign(diagnosis=np.where(y == 1, "benign", "malignant"))


@pytest.fixture(scope="session")
def diabetes() -> pd.DataFrame:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X.assign(progression=y)


@pytest.fixture(scope="session")
def churn() -> pd.DataFrame:
    """2000 customers joined with their labels: ids, dates, categoricals, a boolean."""
    data = generate_churn(2000, seed=3)
    customers = data.customers.to_pandas()
    labels = data.churn_labels.to_pandas()[["customer_id", "churned"]]
    return customers.merge(labels, on="customer_id")


@pytest.fixture(scope="session")
def monthly() -> pd.DataFrame:
    """A CO2-like monthly series: trend, yearly season and noise (20 years)."""
    n = 240
    rng = np.random.default_rng(0)
    t = np.arange(n)
    y = 315 + 0.12 * t + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, n)
    return pd.DataFrame({"month": pd.date_range("2000-01-01", periods=n, freq="MS"), "co2": y})
