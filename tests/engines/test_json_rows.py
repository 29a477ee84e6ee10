"""Arrow rows as JSON text (what the inference table logs)."""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime

import pyarrow as pa
import pytest

from lakeloom.engines.json_rows import json_objects, json_values


def test_rows_become_json_objects_that_parse_back() -> None:
    columns = [
        pa.array([1.5, math.nan, math.inf, None]),
        pa.array([1, None, 2**62, -3]),
        pa.array(['a "quoted"\ntext\\', None, "é\x01", ""]),
        pa.array([True, False, None, True]),
        pa.array([b"ab", None, b"", b"\x00"]),
        pa.array([[1, 2], None, [], [3]], pa.list_(pa.int64())),
    ]
    keys = ["x", "n", 'we"ird key', "b", "blob", "list"]
    rows = [json.loads(text) for text in json_objects(columns, keys).to_pylist()]
    assert rows[0] == {
        "x": 1.5,
        "n": 1,
        'we"ird key': 'a "quoted"\ntext\\',
        "b": True,
        "blob": "YWI=",
        "list": [1, 2],
    }
    assert rows[1] == dict.fromkeys(keys[:3], None) | {"b": False, "blob": None, "list": None}
    assert rows[2]["x"] is None and rows[2]["n"] == 2**62  # infinity: null; big ints exact
    assert rows[2]['we"ird key'] == "é\x01" and rows[2]["blob"] == ""
    assert rows[3]["blob"] == "AA=="


def test_keys_that_differ_only_in_case_stay_apart() -> None:
    out = json_objects([pa.array([1.0]), pa.array([2.0])], ["A", "a"]).to_pylist()
    assert json.loads(out[0]) == {"A": 1.0, "a": 2.0}


def test_times_are_text() -> None:
    when = pa.array([datetime(2020, 1, 2, 3, 4, 5)], pa.timestamp("us"))
    assert json.loads(json_objects([when], ["t"])[0].as_py())["t"].startswith("2020-01-02 03:04:05")


def test_values_become_json_text_and_nulls_the_text_null() -> None:
    assert json_values(pa.array([0.25, math.nan, None, -math.inf])).to_pylist() == [
        "0.25",
        "null",
        "null",
        "null",
    ]
    assert json_values(pa.array(["x", None])).to_pylist() == ['"x"', "null"]
    assert json_values(pa.array([3, None], pa.int32())).to_pylist() == ["3", "null"]


def test_each_thread_uses_its_own_connection() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert json_values(pa.array([1, 2])).to_pylist() == ["1", "2"]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_no_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        json_objects([], [])
