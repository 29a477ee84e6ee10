"""Point-in-time training sets on both engines: semantics, errors, rebuilds, the cutoff."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.features import FeatureLookup, FeatureTableNotFound, TrainingSet

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(day: float) -> datetime:
    return T0 + timedelta(days=day)


def spend_rows(items: list[tuple[int, float, float]]) -> pa.Table:
    """(customer_id, day, spend) rows."""
    return pa.table(
        {
            "customer_id": pa.array([i for i, _, _ in items], pa.int64()),
            "ts": pa.array([at(d) for _, d, _ in items], TS),
            "spend": pa.array([s for _, _, s in items], pa.float64()),
            "orders": pa.array([int(s) for _, _, s in items], pa.int32()),
        }
    )


LABELS = pd.DataFrame(
    {
        "customer_id": [1, 1, 2, 2, 3],
        "label_date": pd.to_datetime(
            ["2026-01-03", "2026-01-06", "2026-01-03", "2026-01-03", "2026-01-09"], utc=True
        ),
        "region_id": [10, 20, 10, 10, 30],
        "churned": [0, 1, 0, 0, 1],
    }
)  # fmt: skip


@pytest.fixture
def store(fs_ws: Workspace) -> Workspace:
    fs = fs_ws.features
    fs.create_table(
        "features.spend",
        "customer_id",
        "ts",
        df=spend_rows([(1, 1, 10.0), (1, 5, 50.0), (1, 8, 80.0), (2, 2, 30.0), (2, 9, 90.0)]),
    )
    fs.create_table(
        "features.regions",
        "region_id",
        df=pa.table({"region_id": [10, 20], "region": ["north", "south"]}),
    )
    return fs_ws


def test_point_in_time_training_set(store: Workspace) -> None:
    fs = store.features
    ts = fs.create_training_set(
        df=LABELS,
        feature_lookups=[
            FeatureLookup(
                "features.spend",
                "customer_id",
                feature_names=["spend"],
                rename_outputs={"spend": "spend_at_label"},
                timestamp_lookup_key="label_date",
                default_values={"spend": 0.0},
            ),
            FeatureLookup("features.spend", "customer_id", feature_names="orders"),  # latest
            FeatureLookup("features.regions", "region_id"),  # another key, no time
        ],
        label="churned",
        exclude_columns=["region_id"],
    )
    assert isinstance(ts, TrainingSet) and len(ts) == 5
    df = ts.load_df()
    assert list(df.columns) == [
        "customer_id",
        "label_date",
        "churned",
        "spend_at_label",
        "orders",
        "region",
    ]
    assert df["spend_at_label"].tolist() == [
        10.0,
        50.0,
        30.0,
        30.0,
        0.0,
    ]  # exact-time match, duplicates, default
    assert df["orders"].tolist()[:4] == [80, 80, 90, 90] and pd.isna(df["orders"][4])
    assert df["region"].tolist()[:4] == ["north", "south", "north", "north"] and pd.isna(
        df["region"][4]
    )
    assert ts.versions == {"features.spend": 1, "features.regions": 1}
    assert ts.feature_columns == ["spend_at_label", "orders", "region"]
    assert ts.lineage.rows == 5 and "features.spend@v1" in ts.lineage.name
    assert ts.to_arrow().schema.field("orders").type == pa.int32()


def test_lookback_and_table_labels(store: Workspace) -> None:
    fs = store.features
    store.tables.write("raw.labels", pa.Table.from_pandas(LABELS, preserve_index=False))
    ts = fs.create_training_set(
        "raw.labels",
        [
            FeatureLookup(
                "features.spend",
                "customer_id",
                feature_names=["spend"],
                timestamp_lookup_key="label_date",
                lookback_window="2d",
            )
        ],
        label="churned",
    )
    # Every matched row is at most a day old; customer 3 has no rows at all.
    in_order = ["customer_id", "label_date"]  # a table read by Spark comes in its own order
    got = ts.load_df().sort_values(in_order, kind="stable")
    assert got["spend"].tolist()[:4] == [10.0, 50.0, 30.0, 30.0]
    assert ts.versions["raw.labels"] == 0
    short = fs.create_training_set(
        "raw.labels",
        [FeatureLookup("features.spend", "customer_id", feature_names=["spend"],
                       timestamp_lookup_key="label_date", lookback_window=timedelta(hours=12))],
        label="churned",
    )  # fmt: skip
    got = short.load_df().sort_values(in_order, kind="stable")
    assert got["spend"].isna().tolist() == [True, False, False, False, True]


def test_errors_before_any_join(store: Workspace) -> None:
    fs = store.features

    def lookup(**kw: object) -> FeatureLookup:
        args: dict[str, object] = {"table_name": "features.spend", "lookup_key": "customer_id"}
        return FeatureLookup(**{**args, **kw})  # type: ignore[arg-type]

    with pytest.raises(FeatureTableNotFound, match=r"did you mean features\.spend"):
        fs.create_training_set(LABELS, [lookup(table_name="features.spendd")], label="churned")
    with pytest.raises(InvalidArgument, match=r"has no feature 'spent'.*did you mean spend"):
        fs.create_training_set(LABELS, [lookup(feature_names=["spent"])], label="churned")
    with pytest.raises(InvalidArgument, match="key column, not a feature"):
        fs.create_training_set(LABELS, [lookup(feature_names=["ts"])], label="churned")
    with pytest.raises(SchemaMismatch, match=r"label frame has no column.*'cust'"):
        fs.create_training_set(LABELS, [lookup(lookup_key="cust")], label="churned")
    text_keys = LABELS.assign(customer_id=LABELS["customer_id"].astype(str))
    with pytest.raises(SchemaMismatch, match=r"key 'customer_id' is .*string in the spine"):
        fs.create_training_set(text_keys, [lookup()], label="churned")
    text_time = LABELS.assign(label_date=LABELS["label_date"].astype(str))
    with pytest.raises(InvalidArgument, match="must be a timestamp or a date"):
        fs.create_training_set(
            text_time, [lookup(timestamp_lookup_key="label_date")], label="churned"
        )
    with pytest.raises(SchemaMismatch, match="label 'nope'"):
        fs.create_training_set(LABELS, [lookup()], label="nope")
    with pytest.raises(InvalidArgument, match="exclude_columns"):
        fs.create_training_set(LABELS, [lookup()], label="churned", exclude_columns=["zz"])
    with pytest.raises(InvalidArgument, match="already a column"):
        fs.create_training_set(LABELS, [lookup(), lookup()], label="churned")
    with pytest.raises(InvalidArgument, match="2 column"):
        fs.create_training_set(
            LABELS, [lookup(lookup_key=["customer_id", "region_id"])], label="churned"
        )
    with pytest.raises(InvalidArgument, match="default_values"):
        fs.create_training_set(LABELS, [lookup(default_values={"x": 1})], label="churned")


def test_rebuild_is_bit_for_bit(store: Workspace) -> None:
    fs = store.features
    lookups = [FeatureLookup("features.spend", "customer_id", timestamp_lookup_key="label_date")]
    ts = fs.create_training_set(LABELS, lookups, label="churned")
    before = ts.to_arrow()
    fs.write_table("features.spend", spend_rows([(1, 2, 99.0), (3, 1, 5.0)]))
    again = fs.rebuild_training_set(ts.spec, labels=LABELS)
    assert again.to_arrow().equals(before)
    assert not fs.create_training_set(LABELS, lookups, label="churned").to_arrow().equals(before)
    with pytest.raises(InvalidArgument, match="pass the same labels"):
        fs.rebuild_training_set(ts.spec)


def test_write_time_cutoff_sees_tables_as_committed(store: Workspace) -> None:
    """A late backfill (written after the label time) is invisible with the cutoff."""
    fs = store.features
    committed = fs.history("features.spend")[0]["timestamp"]
    time.sleep(0.05)
    fs.write_table("features.spend", spend_rows([(1, 10, 20.0), (3, 1, 5.0)]))  # backfill
    labels = pd.DataFrame(
        {
            "customer_id": [1, 3, 1],
            "t": [committed + timedelta(milliseconds=20)] * 2 + [datetime.now(UTC)],
            "y": [0, 1, 1],
        }
    )  # fmt: skip
    lookups = [FeatureLookup("features.spend", "customer_id", ["spend"], timestamp_lookup_key="t")]
    plain = fs.create_training_set(labels, lookups, label="y").load_df()
    assert plain["spend"].tolist() == [20.0, 5.0, 20.0]
    cut = fs.create_training_set(labels, lookups, label="y", write_time_cutoff=True).load_df()
    assert cut["spend"].tolist()[0] == 80.0 and pd.isna(cut["spend"][1])
    assert cut["spend"].tolist()[2] == 20.0
    early = labels.assign(t=[committed - timedelta(days=1)] * 3)
    nothing = fs.create_training_set(early, lookups, label="y", write_time_cutoff=True).load_df()
    assert nothing["spend"].isna().all()  # before the table existed


def test_train_on_a_training_set(ml_ws: Workspace) -> None:
    fs = ml_ws.features
    rows = [(c, d, float(c * 10 + d)) for c in range(1, 41) for d in (1, 4, 7)]
    fs.create_table("features.spend", "customer_id", "ts", df=spend_rows(rows))
    labels = pd.DataFrame(
        {
            "customer_id": list(range(1, 41)),
            "label_date": [at(5)] * 40,
            "churned": [i % 2 for i in range(40)],
        }
    )
    ts = fs.create_training_set(
        labels,
        [FeatureLookup("features.spend", "customer_id", timestamp_lookup_key="label_date")],
        label="churned",
        exclude_columns=["customer_id", "label_date"],
    )
    result = ml_ws.train(ts, label="churned", experiment="fs", models="logistic_regression")
    assert list(result.features.features) == ["spend", "orders"]
    assert result.lineage.rows == 40 and "features.spend@v1" in result.lineage.name
