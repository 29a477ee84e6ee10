"""Finding lakehouse names in Spark SQL (no Spark needed)."""

from __future__ import annotations

import pytest

from lakeloom.engines.spark_sql import bind_table_names

KNOWN = ["raw.people", "sales.orders"]


@pytest.mark.parametrize(
    ("query", "text", "tables"),
    [
        (
            "select * from raw.people p join sales.orders o on p.id = o.person",
            "select * from {lakeloom_t0} p join {lakeloom_t1} o on p.id = o.person",
            {"lakeloom_t0": "raw.people", "lakeloom_t1": "sales.orders"},
        ),
        ("SELECT * FROM Raw.People", "SELECT * FROM {lakeloom_t0}", {"lakeloom_t0": "raw.people"}),
        (
            "select * from `raw`.`people`, raw . people",
            "select * from {lakeloom_t0}, {lakeloom_t0}",
            {"lakeloom_t0": "raw.people"},
        ),
        # Strings, comments, three-part names and columns are not tables.
        ("select 'raw.people', \"raw.people\" from t", None, {}),
        ("select 1 -- from raw.people\n, 2 /* raw.people /* nested */ raw.people */", None, {}),
        ("select * from spark_catalog.raw.people", None, {}),
        ("select raw.people.id from x", None, {}),
        ("select * from raw.unknown", None, {}),
        ("select 1.5e3, .5 from t", None, {}),
    ],
)
def test_bind_table_names(query: str, text: str | None, tables: dict[str, str]) -> None:
    bound = bind_table_names(query, KNOWN)
    assert bound.tables == tables
    assert bound.text == (query if text is None else text)


def test_braces_are_escaped_for_the_formatter() -> None:
    bound = bind_table_names("select '{x}' as a from raw.people", KNOWN)
    assert bound.text == "select '{{x}}' as a from {lakeloom_t0}"
    assert bound.text.format(lakeloom_t0="v") == "select '{x}' as a from v"


def test_escaped_quotes_inside_strings() -> None:
    bound = bind_table_names(r"select 'it\'s raw.people' from raw.people", KNOWN)
    assert bound.text == r"select 'it\'s raw.people' from {lakeloom_t0}"
