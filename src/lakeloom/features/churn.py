"""The churn demo's features, from ``raw.customers``, ``raw.new_customers`` and ``raw.orders``.

Two feature tables, each computed two ways with the same result: SQL on the local engine
(DuckDB) and the PySpark DataFrame API on the Spark engine.

* ``features.customer_demographics`` (key ``customer_id``, timestamp ``ts`` = the signup
  day): attributes that hold from signup on (gender, region, plan, income, support calls,
  e-mail opt-in, birth and signup dates).
* ``features.customer_rfm_daily`` (keys ``customer_id`` + ``ts``): one snapshot per customer
  and day (midnight UTC) of the ``days`` days up to ``as_of``, from the day they signed up.
  A snapshot at ``ts`` sees the orders placed at or before ``ts``: recency, frequency and
  monetary value (``recency_days``, ``orders_30d``, ``orders_90d``, ``orders_total``,
  ``order_frequency`` = orders per 30 days over the last 90, ``amount_90d``,
  ``total_spent``, ``avg_order_value``) and the customer's ``age_years`` and
  ``tenure_months`` on that day.

Money sums are rounded to cents, so that both ways (which add in different orders) agree to
the bit. How the windows are computed (both ways): each order is counted from the first midnight at
or after it (its "bucket" day), so a window of the last N days of a snapshot is the buckets
of its day and the N-1 days before, i.e. the orders in ``(ts - N days, ts]``. One pass of
window functions over the buckets and the snapshot rows, per customer, gives every snapshot.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from lakeloom.engines.base import Engine, Frame
from lakeloom.errors import InvalidArgument
from lakeloom.lakehouse.tables import Tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = [
    "CHURN_FEATURES",
    "DEMOGRAPHICS_SQL",
    "RFM_DAILY_SQL",
    "churn_features",
    "demographics_spark",
    "rfm_daily_spark",
]

_EPOCH = date(1970, 1, 1)
_DAY_US = 86_400_000_000

DEMOGRAPHICS_SQL = """
with customers as (
    select * from raw.customers
    union all
    select * from raw.new_customers
)
select
    customer_id,
    cast(signup_date as timestamptz) as ts,
    birth_date,
    signup_date,
    gender,
    region,
    plan,
    income,
    support_calls,
    email_opt_in
from customers
"""

RFM_DAILY_SQL = """
with customers as (
    select customer_id, birth_date, signup_date from raw.customers
    union all
    select customer_id, birth_date, signup_date from raw.new_customers
),
snapshots as (
    select c.customer_id, c.birth_date, c.signup_date, d.range as day
    from customers c
    cross join range({first_day}, {last_day} + 1) d
    where d.range >= date_diff('day', date '1970-01-01', c.signup_date)
),
buckets as (
    select
        customer_id,
        (epoch_us(order_date) + {day_us} - 1) // {day_us} as day,
        count(*) as n,
        sum(amount) as amount,
        max(order_date) as last_order
    from raw.orders
    group by all
),
events as (
    select customer_id, day, n, amount, last_order, false as snapshot,
           null::date as birth_date, null::date as signup_date
    from buckets
    union all
    select customer_id, day, 0, 0.0, null, true, birth_date, signup_date
    from snapshots
),
windowed as (
    select
        *,
        sum(n) over upto as orders_total,
        sum(amount) over upto as total_spent,
        max(last_order) over upto as last_order_at,
        sum(n) over last30 as orders_30d,
        sum(n) over last90 as orders_90d,
        sum(amount) over last90 as amount_90d
    from events
    window
        upto as (partition by customer_id order by day
                 range between unbounded preceding and current row),
        last30 as (partition by customer_id order by day
                   range between 29 preceding and current row),
        last90 as (partition by customer_id order by day
                   range between 89 preceding and current row)
),
snapshot_rows as (
    select *, to_timestamp(day * 86400) as ts, cast(to_timestamp(day * 86400) as date) as d
    from windowed
    where snapshot
)
select
    customer_id,
    ts,
    cast(date_diff('day', cast(last_order_at as date), d) as bigint) as recency_days,
    cast(orders_30d as bigint) as orders_30d,
    cast(orders_90d as bigint) as orders_90d,
    cast(orders_total as bigint) as orders_total,
    cast(orders_90d as double) / 3.0 as order_frequency,
    round(cast(amount_90d as double), 2) as amount_90d,
    round(cast(total_spent as double), 2) as total_spent,
    round(cast(total_spent as double), 2) / nullif(orders_total, 0) as avg_order_value,
    cast(year(d) - year(birth_date)
         - case when month(d) * 100 + day(d) < month(birth_date) * 100 + day(birth_date)
           then 1 else 0 end as bigint) as age_years,
    cast((year(d) - year(signup_date)) * 12 + month(d) - month(signup_date)
         - case when day(d) < day(signup_date) then 1 else 0 end as bigint) as tenure_months
from snapshot_rows
"""


def _day(value: date) -> int:
    return (value - _EPOCH).days


def demographics_spark(customers: DataFrame, new_customers: DataFrame) -> DataFrame:
    """``features.customer_demographics`` with the PySpark DataFrame API."""
    from pyspark.sql import functions as F

    both = customers.unionByName(new_customers)
    return both.select(
        "customer_id",
        F.col("signup_date").cast("timestamp").alias("ts"),
        "birth_date",
        "signup_date",
        "gender",
        "region",
        "plan",
        "income",
        "support_calls",
        "email_opt_in",
    )


def rfm_daily_spark(
    customers: DataFrame,
    new_customers: DataFrame,
    orders: DataFrame,
    *,
    as_of: date,
    days: int,
) -> DataFrame:
    """``features.customer_rfm_daily`` with the PySpark DataFrame API (same rows as the SQL)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = orders.sparkSession
    people = customers.select("customer_id", "birth_date", "signup_date").unionByName(
        new_customers.select("customer_id", "birth_date", "signup_date")
    )
    grid = spark.range(_day(as_of) - days, _day(as_of) + 1).withColumnRenamed("id", "day")
    snapshots = (
        people.crossJoin(grid)
        .where(F.col("day") >= F.datediff(F.col("signup_date"), F.lit(_EPOCH)))
        .select(
            "customer_id",
            "day",
            F.lit(0).cast("long").alias("n"),
            F.lit(0.0).alias("amount"),
            F.lit(None).cast("timestamp").alias("last_order"),
            F.lit(True).alias("snapshot"),
            "birth_date",
            "signup_date",
        )
    )
    buckets = (
        orders.withColumn(
            "day", F.floor((F.unix_micros("order_date") + _DAY_US - 1) / _DAY_US).cast("long")
        )
        .groupBy("customer_id", "day")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum("amount").alias("amount"),
            F.max("order_date").alias("last_order"),
        )
        .select(
            "customer_id",
            "day",
            "n",
            "amount",
            "last_order",
            F.lit(False).alias("snapshot"),
            F.lit(None).cast("date").alias("birth_date"),
            F.lit(None).cast("date").alias("signup_date"),
        )
    )
    by_customer = Window.partitionBy("customer_id").orderBy("day")
    upto = by_customer.rangeBetween(Window.unboundedPreceding, Window.currentRow)
    last30 = by_customer.rangeBetween(-29, Window.currentRow)
    last90 = by_customer.rangeBetween(-89, Window.currentRow)
    rows = (
        buckets.unionByName(snapshots)
        .withColumn("orders_total", F.sum("n").over(upto))
        .withColumn("total_spent", F.sum("amount").over(upto))
        .withColumn("last_order_at", F.max("last_order").over(upto))
        .withColumn("orders_30d", F.sum("n").over(last30))
        .withColumn("orders_90d", F.sum("n").over(last90))
        .withColumn("amount_90d", F.sum("amount").over(last90))
        .where(F.col("snapshot"))
        .withColumn("ts", F.timestamp_seconds(F.col("day") * 86400))
        .withColumn("d", F.to_date("ts"))
    )
    d, birth, signup = F.col("d"), F.col("birth_date"), F.col("signup_date")
    before_birthday = (F.month(d) * 100 + F.dayofmonth(d)) < (
        F.month(birth) * 100 + F.dayofmonth(birth)
    )
    return rows.select(
        "customer_id",
        "ts",
        F.datediff(d, F.to_date("last_order_at")).cast("long").alias("recency_days"),
        F.col("orders_30d").cast("long").alias("orders_30d"),
        F.col("orders_90d").cast("long").alias("orders_90d"),
        F.col("orders_total").cast("long").alias("orders_total"),
        (F.col("orders_90d").cast("double") / 3.0).alias("order_frequency"),
        F.round(F.col("amount_90d").cast("double"), 2).alias("amount_90d"),
        F.round(F.col("total_spent").cast("double"), 2).alias("total_spent"),
        (
            F.round(F.col("total_spent").cast("double"), 2)
            / F.when(F.col("orders_total") != 0, F.col("orders_total"))
        ).alias("avg_order_value"),
        (F.year(d) - F.year(birth) - F.when(before_birthday, 1).otherwise(0))
        .cast("long")
        .alias("age_years"),
        (
            (F.year(d) - F.year(signup)) * 12
            + F.month(d)
            - F.month(signup)
            - F.when(F.dayofmonth(d) < F.dayofmonth(signup), 1).otherwise(0)
        )
        .cast("long")
        .alias("tenure_months"),
    )


#: The built-in feature computations a ``features`` pipeline step can name, with their
#: keys: (primary keys, timestamp key, description).
CHURN_FEATURES: dict[str, tuple[list[str], str, str]] = {
    "churn.demographics": (
        ["customer_id"],
        "ts",
        "Customer attributes from signup on (churn demo).",
    ),
    "churn.rfm_daily": (
        ["customer_id"],
        "ts",
        "Daily recency, frequency, monetary value, age and tenure per customer (churn demo).",
    ),
}

#: Tables each computation reads.
INPUTS = {
    "churn.demographics": ["raw.customers", "raw.new_customers"],
    "churn.rfm_daily": ["raw.customers", "raw.new_customers", "raw.orders"],
}


def churn_features(
    tables: Tables,
    engine: Engine,
    name: str,
    *,
    as_of: date | None = None,
    days: int = 90,
) -> Frame:
    """Compute built-in feature set ``name`` (see :data:`CHURN_FEATURES`) on ``engine``.

    SQL on the local engine, the PySpark DataFrame API on Spark (``engine.name``).
    """
    if name not in CHURN_FEATURES:
        raise InvalidArgument(
            f"unknown built-in features {name!r}; known: {', '.join(sorted(CHURN_FEATURES))}"
        )
    if name == "churn.rfm_daily":
        if as_of is None:
            raise InvalidArgument("churn.rfm_daily needs as_of (the last snapshot day)")
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise InvalidArgument(f"days must be a whole number >= 0, got {days!r}")
    if engine.name == "spark":
        frames: dict[str, Any] = {t: tables.read(t) for t in INPUTS[name]}
        if name == "churn.demographics":
            return demographics_spark(frames["raw.customers"], frames["raw.new_customers"])
        assert as_of is not None
        return rfm_daily_spark(
            frames["raw.customers"],
            frames["raw.new_customers"],
            frames["raw.orders"],
            as_of=as_of,
            days=days,
        )
    if name == "churn.demographics":
        return tables.sql(DEMOGRAPHICS_SQL)
    assert as_of is not None
    return tables.sql(
        RFM_DAILY_SQL.format(first_day=_day(as_of) - days, last_day=_day(as_of), day_us=_DAY_US)
    )
