"""Drift statistics from profiles, checked against scipy on the rows they summarise."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance

from lakeloom.engines.local import LocalEngine
from lakeloom.engines.profile_spec import NumericColumn, ProfileSpec
from lakeloom.monitoring.profiles import Profile, column_kinds, numeric_edges, parse_profile
from lakeloom.monitoring.stats import categorical_drift, numeric_drift, psi

ENGINE = LocalEngine()


def profile_of(values: np.ndarray | list[str], edges: tuple[float, ...] = ()) -> Profile:
    """The engine's profile of one column called ``x``."""
    array = pa.array(values)
    kind = column_kinds(pa.schema([("x", array.type)]))["x"]
    spec = (
        ProfileSpec(numeric=(NumericColumn("x", edges),))
        if kind == "numeric"
        else ProfileSpec(categorical=("x",))
    )
    return parse_profile(ENGINE.profile(pa.table({"x": array}), spec))[None]


def numeric_pair(a: np.ndarray, b: np.ndarray) -> tuple[Profile, Profile, tuple[float, ...]]:
    edges = numeric_edges(profile_of(a).numeric["x"])
    return profile_of(a, edges), profile_of(b, edges), edges


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_binned_ks_and_wasserstein_track_scipy_on_the_rows(shift: float) -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(0, 1, 4000)
    b = rng.normal(shift, 1, 3000)
    pa_, pb, edges = numeric_pair(a, b)
    found = {s.method: s for s in numeric_drift(pa_.numeric["x"], pb.numeric["x"], edges)}
    exact = stats.ks_2samp(a, b)
    # Binned D is a lower bound of the exact D, within one bin's mass (1/100 of the range).
    assert found["ks"].statistic <= exact.statistic + 1e-12
    assert found["ks"].statistic >= exact.statistic - 0.02
    asymp = stats.ks_2samp(a, b, method="asymp")
    if shift:
        assert found["ks"].p_value == pytest.approx(asymp.pvalue, abs=1e-6)
    w = stats.wasserstein_distance(a, b) / np.std(a, ddof=1)
    assert found["wasserstein"].statistic == pytest.approx(w, abs=0.01)
    assert found["wasserstein"].primary and not found["ks"].primary  # 4000 rows: a distance
    assert found["wasserstein"].drifted == (shift >= 0.3)


def test_small_baselines_are_decided_by_the_test() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 500), rng.normal(0.5, 1, 400)
    pa_, pb, edges = numeric_pair(a, b)
    found = {s.method: s for s in numeric_drift(pa_.numeric["x"], pb.numeric["x"], edges)}
    assert found["ks"].primary and found["ks"].drifted and found["ks"].p_value < 1e-4
    assert not found["wasserstein"].primary


def test_categorical_statistics_match_scipy() -> None:
    rng = np.random.default_rng(2)
    a = rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])
    b = rng.choice(["a", "b", "c", "d"], 2000, p=[0.4, 0.3, 0.2, 0.1])
    found = {
        s.method: s
        for s in categorical_drift(
            profile_of(list(a)).categorical["x"], profile_of(list(b)).categorical["x"]
        )
    }
    cats = ["a", "b", "c", "d"]
    ca = np.array([(a == c).sum() for c in cats], dtype=float)
    cb = np.array([(b == c).sum() for c in cats], dtype=float)
    reference = stats.chi2_contingency(np.vstack([ca, cb]), correction=False)
    assert found["chi2"].statistic == pytest.approx(reference.statistic)
    assert found["chi2"].p_value == pytest.approx(reference.pvalue)
    assert found["jensen_shannon"].statistic == pytest.approx(
        distance.jensenshannon(ca / ca.sum(), cb / cb.sum())
    )
    assert found["jensen_shannon"].primary and found["jensen_shannon"].drifted
    assert found["psi"].statistic == pytest.approx(psi(ca, cb))


def test_psi_by_hand() -> None:
    # Shares 0.5/0.5 against 0.7/0.3: (0.2 ln(0.7/0.5)) + (-0.2 ln(0.3/0.5)).
    value = 0.2 * np.log(0.7 / 0.5) - 0.2 * np.log(0.3 / 0.5)
    assert psi([50, 50], [70, 30]) == pytest.approx(value)
    assert psi([10, 0], [10, 0]) == pytest.approx(0.0)
