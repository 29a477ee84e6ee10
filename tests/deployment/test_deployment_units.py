"""The deployment pieces on their own: config, routing, auth, schema checks, protocol."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import pytest

from lakeloom.deployment import example_config, hash_api_key, parse_endpoint_config
from lakeloom.deployment.auth import ApiKeys
from lakeloom.deployment.config import parse_model_ref, single_model_config
from lakeloom.deployment.protocol import decode
from lakeloom.deployment.routing import Router, key_point
from lakeloom.deployment.schema import ColumnSpec, InputSchema, RequestError
from lakeloom.errors import EndpointConfigError, InvalidArgument

SCHEMA = InputSchema(
    [
        ColumnSpec("tenure", "long"),
        ColumnSpec("spend", "double"),
        ColumnSpec("plan", "string"),
        ColumnSpec("email_opt_in", "boolean"),
    ]
)
SECRET = "SECRET-VALUE-7731"


def _config(**extra: Any) -> dict[str, Any]:
    return {"name": "churn", "routes": [{"name": "a", "model": "models:/m@prod"}], **extra}


# -- config -------------------------------------------------------------------------------
def test_example_config_parses() -> None:
    import tomllib

    config = parse_endpoint_config(tomllib.loads(example_config()), "example")
    assert [r.name for r in config.routes] == ["champion", "challenger"]
    assert [r.weight for r in config.routes] == [90, 10]
    assert config.table == "lakeloom.inference_churn"
    assert config.limits.timeout_s == 30 and config.poll_interval_s == 10


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"routes": [{"model": "models:/m@a"}]}, "has no 'name'"),
        (_config(name="Bad-Name"), "name in x"),
        ({"name": "x"}, "declares no routes"),
        (_config(routes=[{"name": "a", "model": "runs:/abc/model"}]), "routes[0].model"),
        (_config(routes=[{"name": "a", "model": "models:/m/Production"}]), "stages"),
        (
            _config(
                routes=[
                    {"name": "a", "model": "models:/m@x", "weight": 0},
                    {"name": "b", "model": "models:/m@y", "weight": 0},
                ]
            ),
            "adding up to 0",
        ),
        (_config(routes=[{"name": "a", "model": "models:/m@x", "weight": True}]), "weight"),
        (_config(limits={"timeout": "soon"}), "limits.timeout"),
        (_config(auth={"api_key_hashes": ["plain-key"]}), "never the keys themselves"),
        (_config(batching={"max_batch": 3}), "unknown key [batching] 'max_batch'"),
        (_config(colour="red"), "unknown key 'colour'"),
        (_config(shadow={"sample": 0.5}), "shadow in x needs a 'model'"),
        (_config(routes=[{"name": "shadow", "model": "models:/m@x"}]), "reserved"),
    ],
)
def test_config_errors_name_the_key(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(EndpointConfigError) as info:
        parse_endpoint_config(data, "x")
    assert needle in str(info.value)


def test_model_refs_and_single_model_config() -> None:
    assert parse_model_ref("models:/churn@production").alias == "production"
    assert parse_model_ref("models:/churn/3").version == 3
    assert parse_model_ref("models:/churn/latest").moves
    assert not parse_model_ref("models:/churn/3").moves
    with pytest.raises(InvalidArgument):
        parse_model_ref("churn")
    config = single_model_config("models:/Churn-Model@production")
    assert config.name == "churn_model"
    assert [(r.name, r.weight) for r in config.routes] == [("default", 100)]


# -- routing ------------------------------------------------------------------------------
class _Slot:
    def __init__(self, name: str) -> None:
        self.name = name


def _router(weights: dict[str, float]) -> Router:
    from lakeloom.deployment.routing import Route

    return Router([Route(n, w, _Slot(n)) for n, w in weights.items()])  # type: ignore[arg-type]


def test_weighted_split_and_sticky_keys() -> None:
    router = _router({"champion": 90, "challenger": 10})
    counts = Counter(router.pick().name for _ in range(20_000))
    assert 0.085 < counts["challenger"] / 20_000 < 0.115
    keyed = {f"customer-{i}": router.pick(f"customer-{i}").name for i in range(500)}
    assert all(router.pick(k).name == name for k, name in keyed.items())
    share = sum(v == "challenger" for v in keyed.values()) / len(keyed)
    assert 0.04 < share < 0.17
    assert key_point("a") == key_point("a") and 0 <= key_point("zzz") < 1
    assert _router({"a": 0, "b": 1}).pick("anything").name == "b"


# -- auth ---------------------------------------------------------------------------------
def test_api_keys_are_hashed_and_checked() -> None:
    digest = hash_api_key("s3cret")
    assert digest.startswith("sha256:") and "s3cret" not in digest
    keys = ApiKeys([hash_api_key("other"), digest])
    assert keys.allows("Bearer s3cret", None)
    assert keys.allows(None, "s3cret")
    assert not keys.allows("Bearer wrong", None)
    assert not keys.allows("Basic s3cret", None)
    assert not keys.allows(None, None)
    assert ApiKeys([]).allows(None, None)


# -- schema and protocol ------------------------------------------------------------------
def _rows(payload: dict[str, Any], schema: InputSchema | None = SCHEMA) -> list[Any]:
    return (
        decode(json.dumps(payload).encode(), "application/json", "routing_key")
        .to_input(schema, 1000)
        .rows
    )


def test_every_mlflow_layout_gives_the_same_rows() -> None:
    record = {"tenure": 3, "spend": 10.5, "plan": "pro", "email_opt_in": True}
    expected = [(3, 10.5, "pro", True)]
    cols = list(record)
    assert (
        _rows({"dataframe_split": {"columns": cols, "data": [list(record.values())]}}) == expected
    )
    shuffled = cols[::-1]
    assert (
        _rows({"dataframe_split": {"columns": shuffled, "data": [[record[c] for c in shuffled]]}})
        == expected
    )
    assert _rows({"dataframe_records": [record]}) == expected
    assert _rows({"instances": [record]}) == expected
    assert _rows({"inputs": {c: [v] for c, v in record.items()}}) == expected
    assert _rows({"inputs": record}) == expected
    assert _rows({"dataframe_split": {"data": [list(record.values())]}}) == expected
    csv = b"tenure,spend,plan,email_opt_in\n3,10.5,pro,true\n"
    assert decode(csv, "text/csv; charset=utf-8", "k").to_input(SCHEMA, 10).rows == expected


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        (
            {"dataframe_split": {"columns": ["tenure"], "data": [[1]]}},
            400,
            "missing column 'spend'",
        ),
        (
            {
                "dataframe_records": [
                    {"tenure": 1, "spend": SECRET, "plan": "a", "email_opt_in": True}
                ]
            },
            400,
            "column 'spend' expects double, got a string",
        ),
        (
            {
                "dataframe_records": [
                    {"tenure": True, "spend": 1.0, "plan": "a", "email_opt_in": True}
                ]
            },
            400,
            "column 'tenure' expects long, got a boolean",
        ),
        (
            {
                "dataframe_records": [
                    {"tenure": 1, "spend": False, "plan": "a", "email_opt_in": True}
                ]
            },
            400,
            "column 'spend' expects double, got a boolean",
        ),
        (
            {
                "dataframe_split": {
                    "columns": ["tenure", "spend", "plan", "email_opt_in"],
                    "data": [[1, 2.0, "a", True], [1, 2.0, "a"]],
                }
            },
            400,
            "row 1 has 3 values",
        ),
        (
            {
                "dataframe_records": [
                    {"tenure": 2**70, "spend": 1, "plan": "a", "email_opt_in": True}
                ]
            },
            400,
            "out of the range of long",
        ),
        (
            {
                "dataframe_records": [
                    {"tenure": 1, "spend": [1, 2], "plan": "a", "email_opt_in": True}
                ]
            },
            400,
            "got an array",
        ),
        (
            {"dataframe_records": [{"tenure": 1.5, "spend": 1, "plan": "a", "email_opt_in": True}]},
            400,
            "fractional",
        ),
        ({"dataframe_split": {"data": [[1, 2.0, "a", True]]}, "inputs": [1]}, 400, "exactly one"),
        ({"rows": [1]}, 400, "exactly one of dataframe_split"),
        ({"dataframe_split": [[1]]}, 400, "must be an object"),
        ({"dataframe_split": {"data": [1, 2]}}, 400, "row 0 is a number"),
    ],
)
def test_schema_errors_name_column_and_type_never_the_value(
    payload: dict[str, Any], status: int, needle: str
) -> None:
    with pytest.raises(RequestError) as info:
        _rows(payload)
    assert info.value.status == status
    assert needle in info.value.message
    assert SECRET not in info.value.message


def test_unreadable_bodies() -> None:
    cases: list[tuple[bytes, str | None, int]] = [
        (b"{not json", "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (b'{"inputs": [' + b"9" * 10_000 + b"]}", "application/json", 400),
        (b"\xff\xfe\x00garbage", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"{}", "text/plain", 415),
        (b"{}", None, 415),
        (b"{}", "application/json; charset=latin-1", 415),
        (b"", "text/csv", 400),
    ]
    for body, content_type, status in cases:
        with pytest.raises(RequestError) as info:
            decode(body, content_type, "k")
        assert info.value.status == status, (body[:20], content_type)


def test_json_the_fast_parser_refuses_is_read_like_python_reads_it() -> None:
    """A BOM, NaN, Infinity: accepted as Python's json (and MLflow's server) accepts them."""
    bodies = [
        b'\xef\xbb\xbf{"dataframe_split": {"columns": ["x"], "data": [[1.5]]}}',
        b'{"dataframe_split": {"columns": ["x"], "data": [[NaN]]}}',
        b'{"dataframe_split": {"columns": ["x"], "data": [[-Infinity]]}}',
    ]
    values = []
    for body in bodies:
        payload = decode(body, "application/json", "k")
        assert payload.layout == "split" and payload.columns == ["x"]
        values.append(payload.data[0][0])
    assert values[0] == 1.5 and math.isnan(values[1]) and values[2] == -math.inf
    # An integer over 64 bits is read as its nearest double: a long column refuses it.
    huge = b'{"dataframe_split": {"columns": ["n"], "data": [[' + b"9" * 30 + b"]]}}"
    payload = decode(huge, "application/json", "k")
    assert payload.data == [[1e30]]
    with pytest.raises(RequestError, match="out of the range of long"):
        payload.to_input(InputSchema([ColumnSpec("n", "long")]), 10)


def test_predictions_body() -> None:
    import numpy as np

    from lakeloom.deployment.protocol import predictions_body

    assert predictions_body([0.25, 1, "a", None]) == b'{"predictions":[0.25,1,"a",null]}'
    # JSON has no NaN: a non-finite prediction is null (as in the inference table).
    assert json.loads(predictions_body([math.nan, math.inf])) == {"predictions": [None, None]}
    assert json.loads(predictions_body([np.float32(0.5), np.array([1, 2])])) == {
        "predictions": [0.5, [1, 2]]
    }
    assert json.loads(predictions_body([{1: "a"}])) == {"predictions": [{"1": "a"}]}
    big = 2**70  # over 64 bits: written by Python's encoder
    assert json.loads(predictions_body([big])) == {"predictions": [big]}


def test_schemaless_inference_refuses_mixed_columns() -> None:
    ok = _rows({"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2.5, "b": None}]}, None)
    assert ok == [(1, "x"), (2.5, None)]
    for bad in ([{"a": True}, {"a": 1}], [{"a": "x"}, {"a": 1}], [{"a": {"n": 1}}]):
        with pytest.raises(RequestError):
            _rows({"dataframe_records": bad}, None)


def test_numbers_edge_cases() -> None:
    rows = _rows(
        {"dataframe_records": [{"tenure": 2, "spend": 1e308, "plan": None, "email_opt_in": False}]}
    )
    assert rows == [(2, 1e308, None, False)]
    inf = decode(
        b'{"dataframe_records": [{"tenure": 2, "spend": 1e400, "plan": "a", '
        b'"email_opt_in": false}]}',
        "application/json",
        "k",
    ).to_input(SCHEMA, 10)
    assert math.isinf(inf.rows[0][1])
    with pytest.raises(RequestError):
        _rows(
            {
                "dataframe_records": [
                    {"tenure": 2, "spend": 10**400, "plan": "a", "email_opt_in": False}
                ]
            }
        )


# -- the inference table's rows ---------------------------------------------------------------
def test_inference_rows_hold_json_and_typed_columns() -> None:
    import time

    from lakeloom.deployment.inference_log import LogEntry, build_table

    columns = ("x", "n", "s", "b", "t", "blob", "status")
    types = ("double", "long", "string", "boolean", "datetime", "binary", "double")
    rows = [
        (1.5, 2, 'a "quoted" text', True, "2020-01-02T03:04:05", b"ab", 7.0),
        (math.nan, None, None, False, None, None, math.inf),
    ]
    body = b'{"dataframe_split": {"columns": ["x"], "data": [[1.5]]}}'
    first = LogEntry(
        "r1", time.time(), "default", "m", 1, 200, 1.0, columns, types, rows, [1, 0], body=body
    )
    failed = LogEntry(
        "r2", time.time(), "none", None, None, 400, 0.0, error=b'{"e": 1}', body=b"{\xff"
    )
    table = build_table([first, failed], "ep").to_pylist()
    assert [r["row"] for r in table] == [0, 1, None]
    # The body as sent, on the request's first row; a failed request's too (bad bytes replaced).
    assert [r["request"] for r in table] == [body.decode(), None, "{\ufffd"]
    assert table[0]["x"] == 1.5 and table[0]["s"] == 'a "quoted" text' and table[0]["b"] is True
    assert table[0]["blob"] == b"ab" and str(table[0]["t"]).startswith("2020-01-02 03:04:05")
    assert table[1]["x"] is None  # a missing value (NaN for the model) is a null in the table
    assert table[0]["input_status"] == 7.0 and table[0]["n"] == 2
    assert [r["response"] for r in table] == ["1", "0", '{"e": 1}']
    assert [r["prediction"] for r in table] == [1.0, 0.0, None]
    labels = LogEntry(
        "r3", time.time(), "a", "m", 1, 200, 1.0, ("x",), ("double",), [(1.0,)], ["yes"]
    )
    out = build_table([labels], "ep").to_pylist()[0]
    assert json.loads(out["response"]) == "yes" and out["prediction"] is None
    assert out["request"] is None  # no body recorded


def test_logged_from_the_scored_matrix_as_from_the_rows() -> None:
    import time

    import numpy as np

    from lakeloom.deployment.inference_log import LogEntry, build_table

    cols, types = ("x", "y"), ("double", "double")
    requests = [[(1.0, math.nan), (3, 2.5)], [(0.5, -1.0)]]
    entries = []
    for rows in requests:
        matrix = np.array(rows, dtype=np.float64)
        preds = [0.1] * len(rows)
        args = ("r", time.time(), "a", "m", 1, 200, 1.0, cols, types, rows, preds)
        entries.append((LogEntry(*args), LogEntry(*args, matrix=matrix)))
    from_rows = build_table([e for e, _ in entries], "ep")
    from_matrix = build_table([e for _, e in entries], "ep")
    assert from_matrix.equals(from_rows)
    assert [(r["x"], r["y"]) for r in from_matrix.to_pylist()] == [
        (1.0, None),
        (3.0, 2.5),
        (0.5, -1.0),
    ]


def test_missing_floats_are_logged_as_nulls() -> None:
    import time

    from lakeloom.deployment.inference_log import LogEntry, build_table

    rows = [(1.0, math.nan), (math.nan, 2.5)]
    entry = LogEntry(
        "r", time.time(), "a", "m", 1, 200, 1.0, ("x", "y"), ("double",) * 2, rows, [0.1, 0.2]
    )
    table = build_table([entry], "ep").to_pylist()
    assert [(r["x"], r["y"]) for r in table] == [(1.0, None), (None, 2.5)]
