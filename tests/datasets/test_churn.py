"""Tests for the synthetic churn data generator."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from lakeloom.datasets import ChurnData, generate_churn

N = 2000
AS_OF = datetime.date(2026, 1, 1)
US_PER_DAY = 86_400_000_000
TS = pa.timestamp("us", tz="UTC")

CUSTOMER_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("birth_date", pa.date32()),
        ("signup_date", pa.date32()),
        ("gender", pa.string()),
        ("region", pa.string()),
        ("plan", pa.string()),
        ("income", pa.float64()),
        ("tenure_months", pa.int32()),
        ("support_calls", pa.int32()),
        ("email_opt_in", pa.bool_()),
    ]
)
ORDER_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("customer_id", pa.int64()),
        ("order_date", TS),
        ("amount", pa.float64()),
        ("channel", pa.string()),
    ]
)
LABEL_SCHEMA = pa.schema([("customer_id", pa.int64()), ("label_date", TS), ("churned", pa.int32())])


@pytest.fixture(scope="module")
def data() -> ChurnData:
    return generate_churn(N, seed=7)


def _epoch_us(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days * US_PER_DAY


def _ints(col: pa.ChunkedArray) -> np.ndarray:
    """Integer (or timestamp as int64 microseconds) column as a numpy array."""
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    return np.asarray(col.to_numpy())


def test_schemas(data: ChurnData) -> None:
    assert data.customers.schema.equals(CUSTOMER_SCHEMA)
    assert data.new_customers.schema.equals(CUSTOMER_SCHEMA)
    assert data.orders.schema.equals(ORDER_SCHEMA)
    assert data.churn_labels.schema.equals(LABEL_SCHEMA)


def test_tables_mapping(data: ChurnData) -> None:
    tables = data.tables()
    assert list(tables) == ["raw.customers", "raw.orders", "raw.churn_labels", "raw.new_customers"]
    assert tables["raw.customers"] is data.customers
    assert tables["raw.orders"] is data.orders
    assert tables["raw.churn_labels"] is data.churn_labels
    assert tables["raw.new_customers"] is data.new_customers


def test_deterministic_for_a_seed(data: ChurnData) -> None:
    again = generate_churn(N, seed=7)
    for name, table in data.tables().items():
        assert table.equals(again.tables()[name]), name


def test_different_seeds_differ(data: ChurnData) -> None:
    other = generate_churn(N, seed=8)
    for name, table in data.tables().items():
        assert not table.equals(other.tables()[name]), name


def test_ids(data: ChurnData) -> None:
    ids = _ints(data.customers["customer_id"])
    assert np.array_equal(ids, np.arange(1, N + 1))
    assert np.array_equal(_ints(data.churn_labels["customer_id"]), ids)
    order_ids = _ints(data.orders["order_id"])
    assert len(np.unique(order_ids)) == len(order_ids)
    new_ids = _ints(data.new_customers["customer_id"])
    assert len(new_ids) == N // 10
    assert len(np.unique(new_ids)) == len(new_ids)
    assert not set(new_ids.tolist()) & set(ids.tolist())
    assert new_ids.min() == N + 1


def test_no_nulls_except_income(data: ChurnData) -> None:
    for table in (data.customers, data.new_customers, data.orders, data.churn_labels):
        for name in table.column_names:
            if name != "income":
                assert table[name].null_count == 0, name
    null_share = data.customers["income"].null_count / N
    assert 0.005 <= null_share <= 0.04


def test_categorical_domains(data: ChurnData) -> None:
    for table in (data.customers, data.new_customers):
        assert set(pc.unique(table["gender"]).to_pylist()) <= {"F", "M", "X"}
        assert set(pc.unique(table["plan"]).to_pylist()) <= {"basic", "standard", "premium"}
    assert set(pc.unique(data.customers["plan"]).to_pylist()) == {"basic", "standard", "premium"}
    assert 4 <= len(pc.unique(data.customers["region"])) <= 8
    assert set(pc.unique(data.orders["channel"]).to_pylist()) == {"web", "app", "store"}
    assert set(pc.unique(data.churn_labels["churned"]).to_pylist()) == {0, 1}


def test_customer_attributes_plausible(data: ChurnData) -> None:
    cust = data.customers.to_pandas()
    birth = pd.to_datetime(cust["birth_date"])
    signup = pd.to_datetime(cust["signup_date"])
    as_of = pd.Timestamp(AS_OF)
    age_years = (as_of - birth).dt.days / 365.25
    assert age_years.min() >= 18
    assert age_years.max() <= 100
    assert (signup < as_of).all()
    assert ((signup - birth).dt.days / 365.25 >= 17.9).all()
    assert (cust["tenure_months"] >= 0).all()
    assert (cust["support_calls"] >= 0).all()
    assert (cust["income"].dropna() > 0).all()


def _all_customers(data: ChurnData) -> pa.Table:
    """``raw.customers`` and ``raw.new_customers`` together."""
    return pa.concat_tables([data.customers, data.new_customers])


def test_orders(data: ChurnData) -> None:
    orders = data.orders
    customer_ids = set(_ints(_all_customers(data)["customer_id"]).tolist())
    assert set(_ints(orders["customer_id"]).tolist()) <= customer_ids
    labelled = pc.less_equal(orders["customer_id"], N)
    assert 15 <= pc.sum(labelled).as_py() / N <= 25
    assert pc.min(orders["amount"]).as_py() > 0
    t = _ints(orders["order_date"])
    assert t.max() < _epoch_us(AS_OF)
    assert t.min() >= _epoch_us(AS_OF) - 730 * US_PER_DAY
    # Order ids follow the order date.
    order_ids = _ints(orders["order_id"])
    assert np.all(np.diff(t[np.argsort(order_ids)]) >= 0)
    # No order before the customer signed up.
    cust = _all_customers(data).select(["customer_id", "signup_date"])
    joined = orders.select(["customer_id", "order_date"]).join(cust, "customer_id")
    assert joined.num_rows == orders.num_rows
    signup_us = _ints(joined["signup_date"].cast(pa.int32())).astype(np.int64) * US_PER_DAY
    assert np.all(_ints(joined["order_date"]) >= signup_us)


def test_new_customers_have_orders(data: ChurnData) -> None:
    orders = data.orders
    new_ids = _ints(data.new_customers["customer_id"])
    order_cust = _ints(orders["customer_id"])
    is_new = order_cust > N
    per_customer = np.bincount(order_cust[is_new] - (N + 1), minlength=len(new_ids))
    assert len(per_customer) == len(new_ids)
    # Most new customers have an order history, of about the same size as the labelled ones.
    assert np.mean(per_customer > 0) >= 0.9
    assert 15 <= per_customer.mean() <= 25
    t = _ints(orders["order_date"])
    assert t[is_new].max() < _epoch_us(AS_OF)
    assert t[is_new].min() >= _epoch_us(AS_OF) - 730 * US_PER_DAY
    # New and labelled customers' orders are interleaved in one chronological id sequence.
    order_ids = _ints(orders["order_id"])
    assert np.array_equal(np.sort(order_ids), np.arange(1, orders.num_rows + 1))
    assert np.all(np.diff(t[np.argsort(order_ids)]) >= 0)
    assert 0.05 <= np.mean(is_new[order_ids <= orders.num_rows // 2]) <= 0.15


def test_labels(data: ChurnData) -> None:
    labels = data.churn_labels
    assert labels.num_rows == N
    rate = float(np.mean(_ints(labels["churned"])))
    assert 0.15 <= rate <= 0.35
    t = _ints(labels["label_date"])
    assert t.min() >= _epoch_us(AS_OF) - 90 * US_PER_DAY
    assert t.max() < _epoch_us(AS_OF)
    assert np.all(t % US_PER_DAY == 0)


def test_churners_fade_and_stop(data: ChurnData) -> None:
    orders = data.orders.to_pandas().merge(data.churn_labels.to_pandas(), on="customer_id")
    after = orders[orders["order_date"] > orders["label_date"]]
    assert (after["churned"] == 0).all()
    recent = orders[
        (orders["order_date"] <= orders["label_date"])
        & (orders["order_date"] > orders["label_date"] - pd.Timedelta(days=90))
    ]
    per_customer = recent.groupby("customer_id").size()
    labels = data.churn_labels.to_pandas().set_index("customer_id")
    freq90 = per_customer.reindex(labels.index, fill_value=0)
    churned = labels["churned"] == 1
    assert freq90[churned].mean() < 0.7 * freq90[~churned].mean()


def test_orders_consistent_for_many_customers() -> None:
    """Enough customers to need many id bits in the internal packed sort key."""
    n = 150_000
    n_new = n // 10
    data = generate_churn(n, seed=5)
    orders = data.orders
    assert 15 <= orders.num_rows / (n + n_new) <= 25
    ids = _ints(orders["customer_id"])
    assert ids.min() >= 1
    assert ids.max() <= n + n_new
    assert len(np.unique(ids[ids > n])) >= 0.9 * n_new
    assert np.array_equal(_ints(orders["order_id"]), np.arange(1, orders.num_rows + 1))
    t = _ints(orders["order_date"])
    assert np.all(np.diff(t) >= 0)
    assert t.max() < _epoch_us(AS_OF)
    assert t.min() >= _epoch_us(AS_OF) - 730 * US_PER_DAY
    signup = _all_customers(data)["signup_date"].cast(pa.int32())
    signup_day = _ints(signup).astype(np.int64)
    assert np.all(t >= signup_day[ids - 1] * US_PER_DAY)


def test_custom_as_of_and_tiny_sizes() -> None:
    as_of = datetime.date(2020, 6, 15)
    data = generate_churn(1, seed=0, as_of=as_of)
    assert data.customers.num_rows == 1
    assert data.churn_labels.num_rows == 1
    assert data.new_customers.num_rows == 1
    assert _ints(data.new_customers["customer_id"]).tolist() == [2]
    if data.orders.num_rows:
        assert _ints(data.orders["order_date"]).max() < _epoch_us(as_of)
        assert set(_ints(data.orders["customer_id"]).tolist()) <= {1, 2}
    data = generate_churn(25, seed=3, as_of=as_of)
    t = _ints(data.churn_labels["label_date"])
    assert t.max() < _epoch_us(as_of)
    order_t = _ints(data.orders["order_date"])
    assert order_t.max() < _epoch_us(as_of)
    assert np.all(np.diff(order_t) >= 0)
    assert set(_ints(data.orders["customer_id"]).tolist()) <= set(range(1, 28))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0}, "customers must be >= 1"),
        ({"customers": -5}, "customers must be >= 1"),
        ({"customers": True}, "customers must be an int"),
        ({"customers": 10.0}, "customers must be an int"),
        ({"customers": 10, "seed": -1}, "seed must be >= 0"),
        ({"customers": 10, "seed": "1"}, "seed must be an int"),
        ({"customers": 10, "as_of": "2026-01-01"}, "as_of must be a datetime.date"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_churn(**kwargs)  # type: ignore[arg-type]


def _features(data: ChurnData) -> tuple[pd.DataFrame, np.ndarray]:
    """Point-in-time RFM features (orders up to the label date) joined with demographics."""
    labels = data.churn_labels.to_pandas()
    cust = data.customers.to_pandas()
    orders = data.orders.to_pandas().merge(labels[["customer_id", "label_date"]], on="customer_id")
    orders = orders[orders["order_date"] <= orders["label_date"]]
    age_days = (orders["label_date"] - orders["order_date"]).dt.total_seconds() / 86_400
    orders = orders.assign(
        age_days=age_days,
        in90=age_days < 90,
        in365=age_days < 365,
        amount365=orders["amount"].where(age_days < 365, 0.0),
    )
    rfm = orders.groupby("customer_id").agg(
        recency=("age_days", "min"),
        frequency=("order_id", "size"),
        frequency_90=("in90", "sum"),
        frequency_365=("in365", "sum"),
        monetary_365=("amount365", "sum"),
        mean_amount=("amount", "mean"),
    )
    df = labels.merge(cust, on="customer_id").merge(rfm, on="customer_id", how="left")
    df[["frequency", "frequency_90", "frequency_365", "monetary_365"]] = df[
        ["frequency", "frequency_90", "frequency_365", "monetary_365"]
    ].fillna(0)
    label_day = df["label_date"].dt.tz_localize(None)
    df["age"] = (label_day - pd.to_datetime(df["birth_date"])).dt.days / 365.25
    df["tenure_days"] = (label_day - pd.to_datetime(df["signup_date"])).dt.days
    for col in ("gender", "region", "plan"):
        df[col] = df[col].astype("category").cat.codes
    df["email_opt_in"] = df["email_opt_in"].astype(int)
    x = df.drop(columns=["customer_id", "label_date", "churned", "birth_date", "signup_date"])
    return x.astype(float), df["churned"].to_numpy()


def test_learnable_but_not_trivial() -> None:
    x, y = _features(generate_churn(5000, seed=11))
    idx = np.random.default_rng(0).permutation(len(y))
    train, test = idx[: int(0.7 * len(y))], idx[int(0.7 * len(y)) :]
    model = HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.05,
        categorical_features=["gender", "region", "plan"],
        random_state=0,
    )
    model.fit(x.iloc[train], y[train])
    auc = roc_auc_score(y[test], model.predict_proba(x.iloc[test])[:, 1])
    assert 0.75 <= auc <= 0.95, auc
