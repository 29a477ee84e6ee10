"""Deterministic, vectorised generator of synthetic customer-churn data.

The generator produces four related tables (``raw.customers``, ``raw.orders``,
``raw.churn_labels`` and ``raw.new_customers``) from a hidden causal process:

1. Every customer gets a latent churn propensity ``z ~ N(0, 1)`` and a latent engagement
   that is negatively correlated with it.
2. Customer attributes (plan, income, support calls, e-mail opt-in, ...) are drawn, some of
   them partly driven by ``z``.
3. Orders are drawn from a Poisson process whose rate follows engagement. Customers with a
   high propensity are likely to "fade": some weeks or months before their label date their
   order intensity decays exponentially.
4. ``churned`` is drawn from a logistic model of the propensity, point-in-time RFM features
   (recency, frequency, monetary value before the label date), plan, support calls, tenure,
   age and Gaussian noise. The intercept is calibrated so that about a quarter of the
   customers churn.
5. Churned customers place no orders after their label date.
6. The new customers (to be scored later, without labels) come from the same process: their
   orders are drawn like those of the labelled customers, except that fading runs up to
   ``as_of`` instead of up to a label date and no churn outcome cuts their orders short.
   ``raw.orders`` holds the orders of both groups, with order ids increasing with the order
   date across the whole table.

A good model on point-in-time RFM features plus demographics reaches a ROC AUC of roughly
0.85; the unobservable part of the propensity and the noise keep it well below 1.0.

Everything is generated with numpy array operations (no Python loops over customers or
orders) from a single seed, so the same arguments always give identical tables.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ChurnData", "generate_churn"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_S_PER_DAY = 86_400
_US_PER_S = 1_000_000
_US_PER_DAY = _S_PER_DAY * _US_PER_S
_EPOCH = datetime.date(1970, 1, 1)
_MAX_CUSTOMERS = 100_000_000

_GENDERS = ("F", "M", "X")
_GENDER_P = (0.485, 0.485, 0.03)
_REGIONS = ("north", "south", "east", "west", "central", "overseas")
_REGION_P = (0.22, 0.20, 0.18, 0.17, 0.15, 0.08)
_PLANS = ("basic", "standard", "premium")
_CHANNELS = ("app", "store", "web")  # order = channel codes used below

_ORDER_WINDOW_DAYS = 730  # orders are spread over the two years before ``as_of``
_LABEL_WINDOW_DAYS = 90  # label dates are spread over the last 90 days before ``as_of``
_MIN_TENURE_DAYS = 120  # every customer signs up at least 30 days before their label date
_MEAN_ORDERS = 20.0  # expected orders per customer, before churners stop ordering
_CHURN_RATE = 0.25  # calibrated share of churners
_INCOME_NULL_RATE = 0.02

CUSTOMER_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("birth_date", pa.date32()),
        pa.field("signup_date", pa.date32()),
        pa.field("gender", pa.string()),
        pa.field("region", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("income", pa.float64()),
        pa.field("tenure_months", pa.int32()),
        pa.field("support_calls", pa.int32()),
        pa.field("email_opt_in", pa.bool_()),
    ]
)
"""Schema of ``raw.customers`` and ``raw.new_customers``."""

ORDER_SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.int64()),
        pa.field("customer_id", pa.int64()),
        pa.field("order_date", pa.timestamp("us", tz="UTC")),
        pa.field("amount", pa.float64()),
        pa.field("channel", pa.string()),
    ]
)
"""Schema of ``raw.orders``."""

LABEL_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("label_date", pa.timestamp("us", tz="UTC")),
        pa.field("churned", pa.int32()),
    ]
)
"""Schema of ``raw.churn_labels``."""


@dataclass(frozen=True)
class ChurnData:
    """The four tables of one synthetic churn data set.

    Attributes:
        customers: ``raw.customers``, one row per labelled customer (ids ``1..N``).
        orders: ``raw.orders``, the order history of the labelled and the new customers;
            order ids increase with the order date.
        churn_labels: ``raw.churn_labels``, one row per labelled customer with the date the
            label refers to and whether the customer churned (``int32`` 0/1).
        new_customers: ``raw.new_customers``, customers to score later (ids continue after
            ``N``); same columns as ``customers``, orders up to ``as_of``, no labels.
    """

    customers: pa.Table
    orders: pa.Table
    churn_labels: pa.Table
    new_customers: pa.Table

    def tables(self) -> dict[str, pa.Table]:
        """Return the tables keyed by their lakehouse name (``raw.<table>``)."""
        return {
            "raw.customers": self.customers,
            "raw.orders": self.orders,
            "raw.churn_labels": self.churn_labels,
            "raw.new_customers": self.new_customers,
        }


def generate_churn(
    customers: int = 5000,
    *,
    seed: int = 42,
    as_of: datetime.date = datetime.date(2026, 1, 1),
) -> ChurnData:
    """Generate a synthetic customer-churn data set.

    Args:
        customers: Number of labelled customers ``N`` (>= 1). ``max(1, N // 10)`` unlabelled
            new customers are added, and about 20 orders per customer (labelled or new).
        seed: Non-negative random seed; the same arguments always give identical tables.
        as_of: Snapshot date. Orders lie in the two years before it (strictly before
            midnight UTC of ``as_of``), label dates in the 90 days before it.

    Returns:
        The generated tables.

    Raises:
        ValueError: If an argument is out of range or of the wrong type.
    """
    n, seed, as_of = _validate(customers, seed, as_of)
    root = np.random.SeedSequence(seed)
    cust_ss, order_ss, label_ss, new_ss, new_order_ss = root.spawn(5)
    as_of_day = (as_of - _EPOCH).days

    cust = _draw_customers(n, np.random.default_rng(cust_ss), as_of_day)
    label_rng = np.random.default_rng(label_ss)
    label_day = as_of_day - label_rng.integers(1, _LABEL_WINDOW_DAYS + 1, size=n)
    order_rng = np.random.default_rng(order_ss)
    orders, scale = _draw_orders(cust, label_day, as_of_day, order_rng)
    orders, churned = _draw_churn(cust, label_day, as_of_day, orders, label_rng)
    channel = _draw_channels(cust, orders.cust, order_rng)

    # New customers: same process with the same rate scale; without a label date, their
    # fading (if any) runs up to as_of and nothing cuts their orders short.
    n_new = max(1, n // 10)
    new = _draw_customers(n_new, np.random.default_rng(new_ss), as_of_day)
    new_rng = np.random.default_rng(new_order_ss)
    new_orders, _ = _draw_orders(
        new, np.full(n_new, as_of_day, dtype=np.int64), as_of_day, new_rng, scale
    )
    new_channel = _draw_channels(new, new_orders.cust, new_rng)

    ids = np.arange(1, n + 1, dtype=np.int64)
    labels = pa.Table.from_arrays(
        [
            pa.array(ids, pa.int64()),
            pa.array(label_day.astype(np.int64) * _US_PER_DAY, pa.timestamp("us", tz="UTC")),
            pa.array(churned.astype(np.int32), pa.int32()),
        ],
        schema=LABEL_SCHEMA,
    )
    return ChurnData(
        customers=_customer_table(cust, ids),
        orders=_orders_table(
            [(orders, channel, 1), (new_orders, new_channel, n + 1)],
            as_of_day - _ORDER_WINDOW_DAYS,
        ),
        churn_labels=labels,
        new_customers=_customer_table(new, np.arange(n + 1, n + n_new + 1, dtype=np.int64)),
    )


def _validate(customers: Any, seed: Any, as_of: Any) -> tuple[int, int, datetime.date]:
    """Check the arguments of :func:`generate_churn` and return them normalised."""
    if isinstance(customers, bool) or not isinstance(customers, int | np.integer):
        raise ValueError(f"customers must be an int, got {type(customers).__name__}")
    if not 1 <= customers <= _MAX_CUSTOMERS:
        raise ValueError(f"customers must be >= 1 and <= {_MAX_CUSTOMERS}, got {customers}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not isinstance(as_of, datetime.date):
        raise ValueError(f"as_of must be a datetime.date, got {type(as_of).__name__}")
    if isinstance(as_of, datetime.datetime):
        as_of = as_of.date()
    if not datetime.date(1900, 1, 1) <= as_of <= datetime.date(9000, 1, 1):
        raise ValueError(f"as_of must be between 1900-01-01 and 9000-01-01, got {as_of}")
    return int(customers), int(seed), as_of


def _sigmoid(x: FloatArray) -> FloatArray:
    """Numerically plain logistic function (inputs here are small)."""
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class _Customers:
    """Customer attributes plus the hidden latent variables, as numpy arrays."""

    z: FloatArray  # latent churn propensity (hidden)
    engagement: FloatArray  # latent order rate multiplier (hidden)
    age_years: FloatArray
    birth_day: IntArray  # days since epoch
    signup_day: IntArray
    gender: IntArray
    region: IntArray
    plan: IntArray  # 0 basic, 1 standard, 2 premium
    income: FloatArray
    income_null: BoolArray
    tenure_months: IntArray
    support_calls: IntArray
    email_opt_in: BoolArray
    log_order_value: FloatArray  # customer-level mean log order amount (hidden)
    app_affinity: FloatArray  # preference for the app channel (hidden)


def _draw_customers(n: int, rng: np.random.Generator, as_of_day: int) -> _Customers:
    """Draw ``n`` customers (attributes and hidden latents)."""
    z = rng.standard_normal(n)
    engagement = -0.45 * z + np.sqrt(1.0 - 0.45**2) * rng.standard_normal(n)

    tenure_days = _MIN_TENURE_DAYS + np.floor(
        np.minimum(rng.gamma(1.6, 650.0, n), 3650.0 - _MIN_TENURE_DAYS)
    ).astype(np.int64)
    signup_day = as_of_day - tenure_days
    tenure_months = np.floor(tenure_days / 30.4375).astype(np.int64)

    # Age at as_of; everybody was at least 18 when signing up.
    age = np.clip(rng.normal(42.0, 14.0, n), 18.0, 90.0)
    age = np.maximum(age, tenure_days / 365.25 + 18.0)
    birth_day = as_of_day - np.floor(age * 365.25).astype(np.int64) - 1

    gender = rng.choice(len(_GENDERS), size=n, p=_GENDER_P).astype(np.int64)
    region = rng.choice(len(_REGIONS), size=n, p=_REGION_P).astype(np.int64)

    log_income = (
        np.log(52_000.0)
        + 0.012 * (np.minimum(age, 60.0) - 42.0)
        + 0.04 * (region == 4)
        + 0.45 * rng.standard_normal(n)
    )
    income = np.round(np.exp(log_income), 2)
    income_null = rng.random(n) < _INCOME_NULL_RATE

    # Plan: ordered latent with income, engagement and (negatively) propensity.
    income_std = (log_income - np.log(52_000.0)) / 0.45
    plan_latent = 0.7 * income_std + 0.3 * engagement - 0.3 * z + rng.standard_normal(n)
    sd = np.sqrt(0.49 + 0.09 + 0.09 + 1.0 + 2 * 0.3 * -0.3 * -0.45)
    plan = np.where(plan_latent < 0.0, 0, np.where(plan_latent < 1.0364 * sd, 1, 2))

    support_calls = rng.poisson(1.3 * np.exp(0.45 * z))
    email_opt_in = rng.random(n) < _sigmoid(0.5 - 0.4 * z + 0.2 * engagement)

    log_order_value = (
        np.log(38.0)
        + 0.25 * (plan == 2)
        - 0.15 * (plan == 0)
        + 0.25 * income_std * 0.45
        - 0.08 * z
        + 0.25 * rng.standard_normal(n)
    )
    app_affinity = -0.05 * (age - 42.0) + 0.5 * rng.standard_normal(n)

    return _Customers(
        z=z,
        engagement=engagement,
        age_years=age,
        birth_day=birth_day,
        signup_day=signup_day,
        gender=gender,
        region=region,
        plan=plan.astype(np.int64),
        income=income,
        income_null=income_null,
        tenure_months=tenure_months,
        support_calls=support_calls.astype(np.int64),
        email_opt_in=email_opt_in,
        log_order_value=log_order_value,
        app_affinity=app_affinity,
    )


def _labels(values: tuple[str, ...], codes: npt.NDArray[Any]) -> pa.Array:
    """Turn integer codes into a plain ``string`` Arrow array."""
    return pc.take(pa.array(values, pa.string()), pa.array(codes.astype(np.int32), pa.int32()))


def _customer_table(c: _Customers, ids: IntArray) -> pa.Table:
    """Build the Arrow customers table from drawn attributes."""
    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.int64()),
            pa.array(c.birth_day.astype(np.int32), pa.date32()),
            pa.array(c.signup_day.astype(np.int32), pa.date32()),
            _labels(_GENDERS, c.gender),
            _labels(_REGIONS, c.region),
            _labels(_PLANS, c.plan),
            pa.array(c.income, pa.float64(), mask=c.income_null),
            pa.array(c.tenure_months.astype(np.int32), pa.int32()),
            pa.array(c.support_calls.astype(np.int32), pa.int32()),
            pa.array(c.email_opt_in, pa.bool_()),
        ],
        schema=CUSTOMER_SCHEMA,
    )


@dataclass(frozen=True)
class _Orders:
    """Orders in chronological order, as numpy arrays.

    ``cust`` holds customer indices (0-based, within their own customer table) and
    ``t_rel_s`` whole seconds relative to ``base_day``, the earliest possible order day.
    """

    cust: IntArray
    t_rel_s: IntArray
    amount: FloatArray


def _draw_orders(
    c: _Customers,
    fade_end_day: IntArray,
    as_of_day: int,
    rng: np.random.Generator,
    scale: float | None = None,
) -> tuple[_Orders, float]:
    """Draw the orders of ``c`` over the order window up to ``as_of_day``.

    Fading customers' order intensity decays from ``fade_end_day`` minus 15 to 200 days
    onwards. The per-customer rates are multiplied by ``scale``; if it is ``None`` it is
    calibrated so that the expected number of orders per customer is ``_MEAN_ORDERS``.
    Return the orders and the scale used, so that other customers can be drawn from the
    same process.

    Order times are whole seconds (int64) relative to ``base_day``, the earliest possible
    order day. To sort the orders chronologically cheaply, each order is packed into one
    int64 key ``(relative time << cust_bits) | customer index`` (at most 26 + 27 bits) and the
    keys are sorted with the (SIMD) value sort, much faster than an argsort on 20M rows.
    """
    n = int(c.z.shape[0])
    base_day = as_of_day - _ORDER_WINDOW_DAYS
    window_start_day = np.maximum(c.signup_day, base_day)
    span_days = (as_of_day - window_start_day).astype(np.float64)

    # Fading: high-propensity customers' order intensity decays from fade_day onwards.
    fades = rng.random(n) < _sigmoid(2.4 * c.z - 1.5)
    fade_day = np.maximum(fade_end_day - rng.uniform(15.0, 200.0, size=n), window_start_day)
    tau_days = rng.uniform(10.0, 60.0, size=n)

    # Negative-binomial style rates: lognormal engagement times a gamma frailty.
    rate = np.exp(0.55 * c.engagement) * rng.gamma(4.0, 0.25, n)
    if scale is None:
        # Expected orders at unit rate: the whole window, minus what the decay removes.
        decayed = np.where(fades, as_of_day - fade_day, 0.0)
        exposure = span_days - (decayed - tau_days * (1.0 - np.exp(-decayed / tau_days)))
        scale = _MEAN_ORDERS / float(np.mean(rate * exposure))
        del decayed, exposure
    rate *= scale
    counts = rng.poisson(rate * span_days)
    del rate

    cust = np.repeat(np.arange(n, dtype=np.int64), counts)
    # Order times in whole seconds relative to base.
    offset_s = (window_start_day - base_day) * _S_PER_DAY
    span_s = (span_days * _S_PER_DAY).astype(np.int64)
    t_rel = rng.random(int(cust.shape[0]))
    t_rel *= span_s[cust]
    t_rel_s = offset_s[cust] + t_rel.astype(np.int64)
    del t_rel

    # Thinning for the fade (only orders of fading customers can be dropped).
    (cand,) = np.nonzero(fades[cust])
    cc = cust[cand]
    since_fade = t_rel_s[cand] / _S_PER_DAY - (fade_day - base_day)[cc]
    drop = rng.random(int(cand.shape[0])) >= np.exp(-np.maximum(since_fade, 0.0) / tau_days[cc])
    keep = np.ones(cust.shape[0], dtype=np.bool_)
    keep[cand[drop]] = False
    del cand, cc, since_fade, drop

    # Chronological order through one packed int64 sort.
    # Relative times need 26 bits (730 days of seconds), customer indices at most 27 bits.
    cust_bits = max(1, (n - 1).bit_length())
    key = t_rel_s[keep] << cust_bits
    del t_rel_s
    key |= cust[keep]
    del cust, keep
    key.sort()
    cust = key & ((1 << cust_bits) - 1)
    t_rel_s = key >> cust_bits
    del key
    m = int(cust.shape[0])

    log_amount = rng.standard_normal(m)
    log_amount *= 0.55
    log_amount += c.log_order_value[cust]
    amount = np.maximum(np.round(np.exp(log_amount), 2), 0.99)
    del log_amount
    return _Orders(cust=cust, t_rel_s=t_rel_s, amount=amount), scale


def _draw_churn(
    c: _Customers,
    label_day: IntArray,
    as_of_day: int,
    orders: _Orders,
    label_rng: np.random.Generator,
) -> tuple[_Orders, BoolArray]:
    """Draw the churn outcome; return the orders without churners' later ones and ``churned``."""
    n = int(c.z.shape[0])
    cust, t_rel_s, amount = orders.cust, orders.t_rel_s, orders.amount
    base_day = as_of_day - _ORDER_WINDOW_DAYS
    window_start_day = np.maximum(c.signup_day, base_day)
    label_rel = (label_day - base_day) * _S_PER_DAY  # label time relative to base, seconds

    # Point-in-time RFM before the label date (orders with order_date <= label_date).
    age_s = label_rel[cust] - t_rel_s  # >= 0 exactly for orders up to the label date
    before = age_s >= 0
    last_rel = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_rel, cust, np.where(before, t_rel_s, -1))
    recency_days = np.where(
        last_rel >= 0,
        (label_rel - last_rel) / _S_PER_DAY,
        (label_day - window_start_day).astype(np.float64) + 30.0,
    )
    in365 = before & (age_s < 365 * _S_PER_DAY)
    freq90 = np.bincount(cust[before & (age_s < 90 * _S_PER_DAY)], minlength=n)
    freq365 = np.bincount(cust[in365], minlength=n)
    monetary365 = np.bincount(cust, weights=np.where(in365, amount, 0.0), minlength=n)
    del age_s, in365

    tenure_years = (label_day - c.signup_day) / 365.25
    logit = (
        0.8 * c.z
        + 0.55 * (np.log1p(recency_days) - 3.0)
        - 0.35 * (np.log1p(freq90) - 1.2)
        - 0.20 * (np.log1p(freq365) - 2.3)
        - 0.15 * (np.log1p(monetary365) - 6.0)
        + np.select([c.plan == 0, c.plan == 2], [0.35, -0.40], 0.0)
        + 0.12 * (c.support_calls - 1.3)
        - 0.35 * np.log1p(tenure_years)
        - 0.015 * (c.age_years - 42.0)
        + 0.4 * label_rng.standard_normal(n)
    )
    # Calibrate the intercept so the expected churn rate is _CHURN_RATE (Newton steps).
    b0 = float(np.log(_CHURN_RATE / (1.0 - _CHURN_RATE)))
    for _ in range(8):
        p = _sigmoid(logit + b0)
        b0 -= float((p.mean() - _CHURN_RATE) / max(float((p * (1.0 - p)).mean()), 1e-9))
    churned = label_rng.random(n) < _sigmoid(logit + b0)

    # Churned customers place no orders after their label date.
    keep = before | ~churned[cust]
    del before
    kept = _Orders(cust=cust[keep], t_rel_s=t_rel_s[keep], amount=amount[keep])
    return kept, churned


def _draw_channels(c: _Customers, cust: IntArray, rng: np.random.Generator) -> npt.NDArray[np.int8]:
    """Draw the channel code of every order (indices into ``_CHANNELS``).

    The app is more likely for young customers, the store for older ones.
    """
    p_app = _sigmoid(c.app_affinity - 0.6)
    p_app_or_store = p_app + (1.0 - p_app) * _sigmoid(-c.app_affinity - 1.0)
    u = rng.random(int(cust.shape[0]))
    channel = (u >= p_app[cust]).astype(np.int8)
    channel += u >= p_app_or_store[cust]
    return channel


def _orders_table(
    parts: list[tuple[_Orders, npt.NDArray[np.int8], int]], base_day: int
) -> pa.Table:
    """Merge chronologically sorted order sets into the Arrow ``raw.orders`` table.

    ``parts`` holds ``(orders, channel codes, first customer id)`` per customer table. The
    sets are merged by order time (earlier parts first on ties), so the order ids, assigned
    in the merged order, increase with the order date across the whole table.
    """
    (first, first_channel, first_id), *rest = parts
    cust = first.cust + first_id
    t_rel_s, amount, channel = first.t_rel_s, first.amount, first_channel
    for orders, part_channel, part_id in rest:
        # Positions of the part's orders in the merged table; both inputs are sorted by time.
        pos = np.searchsorted(t_rel_s, orders.t_rel_s, side="right")
        pos += np.arange(pos.shape[0], dtype=pos.dtype)
        old = np.ones(t_rel_s.shape[0] + pos.shape[0], dtype=np.bool_)
        old[pos] = False
        cust = _interleave(cust, orders.cust + part_id, old, pos)
        t_rel_s = _interleave(t_rel_s, orders.t_rel_s, old, pos)
        amount = _interleave(amount, orders.amount, old, pos)
        channel = _interleave(channel, part_channel, old, pos)
        del pos, old
    m = int(cust.shape[0])
    channel_arr = _labels(_CHANNELS, channel)
    del channel

    order_us = t_rel_s + base_day * _S_PER_DAY
    del t_rel_s
    order_us *= _US_PER_S
    return pa.Table.from_arrays(
        [
            pa.array(np.arange(1, m + 1, dtype=np.int64), pa.int64()),
            pa.array(cust, pa.int64()),
            pa.array(order_us, pa.timestamp("us", tz="UTC")),
            pa.array(amount, pa.float64()),
            channel_arr,
        ],
        schema=ORDER_SCHEMA,
    )


def _interleave(
    a: npt.NDArray[Any], b: npt.NDArray[Any], a_mask: BoolArray, b_pos: IntArray
) -> npt.NDArray[Any]:
    """Place ``a`` at the ``a_mask`` positions and ``b`` at ``b_pos`` of a new array."""
    out = np.empty(a_mask.shape[0], dtype=a.dtype)
    out[a_mask] = a
    out[b_pos] = b
    return out
