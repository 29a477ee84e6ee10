"""Arrow values as JSON text (what the inference table logs)."""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime

import pyarrow as pa

from lakeloom.engines.json_rows import json_values


def test_numbers_and_nulls() -> None:
    assert json_values(pa.array([0.25, math.nan, None, -math.inf])).to_pylist() == [
        "0.25",
        "null",
        "null",
        "null",
    ]
    assert json_values(pa.array([3, None, 2**62])).to_pylist() == ["3", "null", str(2**62)]
    assert json_values(pa.array([True, None])).to_pylist() == ["true", "null"]


def test_text_binary_times_and_nested_values_parse_back() -> None:
    texts = json_values(pa.array(['a "quoted"\ntext\\', "é\x01", None])).to_pylist()
    assert [json.loads(t) for t in texts] == ['a "quoted"\ntext\\', "é\x01", None]
    assert json_values(pa.array([b"ab", b""])).to_pylist() == ['"YWI="', '""']
    when = json_values(pa.array([datetime(2020, 1, 2, 3, 4, 5)], pa.timestamp("us")))
    assert json.loads(when[0].as_py()).startswith("2020-01-02 03:04:05")
    nested = json_values(pa.array([[1, 2], []], pa.list_(pa.int64()))).to_pylist()
    assert [json.loads(t) for t in nested] == [[1, 2], []]


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
