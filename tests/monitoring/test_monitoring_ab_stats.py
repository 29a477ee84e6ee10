"""A/B statistics against scipy's reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lakeloom.monitoring.ab import (
    ABReport,
    Arm,
    _decide,
    mean_test,
    proportion_test,
    samples_needed_means,
    samples_needed_proportions,
    wilson_interval,
)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(120, 1000, 150, 1000), (45, 300, 30, 260)])
def test_two_proportion_z_test_matches_chi_squared(x1: int, n1: int, x2: int, n2: int) -> None:
    z, p = proportion_test(x1, n1, x2, n2)
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    reference = stats.chi2_contingency(table, correction=False)
    assert z * z == pytest.approx(reference.statistic)  # z^2 is Pearson's chi-squared
    assert p == pytest.approx(reference.pvalue)
    assert math.copysign(1, z) == math.copysign(1, x2 / n2 - x1 / n1)


def test_wilson_interval_matches_scipy() -> None:
    for k, n in ((0, 20), (7, 20), (430, 1000)):
        low, high = wilson_interval(k, n)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low, high) == pytest.approx((ci.low, ci.high))


def test_welch_test_from_summaries_matches_raw_data() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(10, 2, 300), rng.normal(10.4, 3, 250)
    t, p = mean_test(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert t == pytest.approx(reference.statistic)
    assert p == pytest.approx(reference.pvalue)


def test_sample_sizes_reach_the_asked_power() -> None:
    p1, p2 = 0.10, 0.12
    n = samples_needed_proportions(p1, p2, alpha=0.05, power=0.8)
    # Power of the pooled z-test at n per group (normal approximation), from scipy's norm.
    za = stats.norm.ppf(0.975)
    pbar = (p1 + p2) / 2
    se0 = math.sqrt(2 * pbar * (1 - pbar) / n)
    se1 = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    power = stats.norm.cdf((abs(p2 - p1) - za * se0) / se1)
    assert power == pytest.approx(0.8, abs=1e-9)
    assert 3800 < n < 4000  # the textbook figure for 10% vs 12%
    m = samples_needed_means(delta=0.5, variance=4.0)
    assert m == pytest.approx(2 * (za + stats.norm.ppf(0.8)) ** 2 * 4.0 / 0.25)
    assert math.isinf(samples_needed_proportions(0.3, 0.3))


def _report(a: tuple[int, float], b: tuple[int, float]) -> ABReport:
    arms = [
        Arm(r, "m", v, None, n, value, None, None)
        for r, v, (n, value) in (("champion", 1, a), ("challenger", 2, b))
    ]
    return ABReport(
        "e", "accuracy", arms[0], arms[1], "", None, None, None, 0.05, 0.8, None, None, "", ""
    )


def test_recommendations() -> None:
    better = _report((2000, 0.70), (2000, 0.76))
    _decide(better, "proportion", True)
    assert better.recommendation == "promote_challenger" and better.more_samples == 0
    worse = _report((2000, 0.76), (2000, 0.70))
    _decide(worse, "proportion", True)
    assert worse.recommendation == "keep_champion"
    unsure = _report((200, 0.70), (200, 0.74))
    _decide(unsure, "proportion", True)
    assert unsure.recommendation == "collect_more"
    needed = math.ceil(samples_needed_proportions(0.70, 0.74))
    assert unsure.more_samples == 2 * (needed - 200)
    same = _report((500, 0.70), (500, 0.70))
    _decide(same, "proportion", True)
    assert same.recommendation == "keep_champion"
    few = _report((1, 1.0), (0, 0.0))
    _decide(few, "proportion", True)
    assert few.recommendation == "collect_more" and few.test == "none"
