"""Pipeline files are validated whole before anything runs; errors name file, step and key."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lakeloom.errors import PipelineError
from lakeloom.pipelines import (
    StepContext,
    load_pipeline,
    parse_param_overrides,
    registered_kinds,
    step_kind,
)
from lakeloom.pipelines import steps as steps_module
from lakeloom.pipelines.params import ParamsError, build_params, describe_type

GOOD = """
name = "p"
description = "a test pipeline"

[params]
customers = 50
as_of = 2025-06-01
table = "ml.out"

[[steps]]
name = "generate"
kind = "generate_churn"
customers = "${params.customers}"
as_of = "${params.as_of}"

[[steps]]
name = "features"
kind = "sql"
query = "select * from raw.customers where signup_date < date '${params.as_of}'"
output_table = "${params.table}"

[[steps]]
name = "upsert"
kind = "sql"
query = "select 1 as id"
output_table = "ml.upserted"
mode = "merge"
keys = ["id"]
"""


def _write(tmp_path: Path, text: str, name: str = "pipeline.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_file_is_parsed_with_params_substituted(tmp_path: Path) -> None:
    spec = load_pipeline(_write(tmp_path, GOOD))
    assert spec.name == "p" and spec.step_names() == ["generate", "features", "upsert"]
    generate = spec.steps[0].params
    assert generate.customers == 50 and generate.as_of == datetime.date(2025, 6, 1)
    features = spec.steps[1].params
    assert "date '2025-06-01'" in features.query and features.output_table == "ml.out"
    assert spec.steps[2].params.keys == ["id"]


def test_overrides_replace_params_with_toml_typed_values(tmp_path: Path) -> None:
    overrides = parse_param_overrides(["customers=7", "as_of=2024-01-02", "table=ml.other"])
    assert overrides == {"customers": 7, "as_of": datetime.date(2024, 1, 2), "table": "ml.other"}
    spec = load_pipeline(_write(tmp_path, GOOD), overrides)
    assert spec.steps[0].params.customers == 7
    assert spec.steps[1].params.output_table == "ml.other"
    with pytest.raises(PipelineError, match=r"--param seed is not a param .* customers, as_of"):
        load_pipeline(_write(tmp_path, GOOD), {"seed": 1})
    with pytest.raises(Exception, match="must look like name=value"):
        parse_param_overrides(["customers"])


def test_select_from_and_only(tmp_path: Path) -> None:
    spec = load_pipeline(_write(tmp_path, GOOD))
    assert [s.name for s in spec.select(from_step="features")] == ["features", "upsert"]
    assert [s.name for s in spec.select(only="features")] == ["features"]
    with pytest.raises(PipelineError, match=r"--from names step 'nope', which does not exist"):
        spec.select(from_step="nope")
    with pytest.raises(PipelineError, match=r"pipeline.toml: --only names step 'x'.*generate"):
        spec.select(only="x")


BAD = {
    "unknown kind": (
        '[[steps]]\nname = "a"\nkind = "train_it"\n',
        r"step 'a': unknown kind 'train_it'; known kinds: .*generate_churn, load, .*sql",
    ),
    "unknown key": (
        '[[steps]]\nname = "a"\nkind = "sql"\nquery = "select 1"\noutput_table = "a.b"\n'
        'querry = "x"\n',
        r"step 'a' \(kind sql\): unknown key 'querry'; allowed keys: query, output_table, mode",
    ),
    "missing key": (
        '[[steps]]\nname = "a"\nkind = "sql"\nquery = "select 1"\n',
        r"step 'a' \(kind sql\): missing required key 'output_table'",
    ),
    "wrong type": (
        '[[steps]]\nname = "a"\nkind = "generate_churn"\ncustomers = "many"\n',
        r"step 'a' \(kind generate_churn\): key 'customers' must be an integer, got 'many'",
    ),
    "bad literal": (
        '[[steps]]\nname = "a"\nkind = "sql"\nquery = "select 1"\noutput_table = "a.b"\n'
        'mode = "upsert"\n',
        r"key 'mode' must be one of 'overwrite', 'append', 'merge', got 'upsert'",
    ),
    "merge without keys": (
        '[[steps]]\nname = "a"\nkind = "sql"\nquery = "select 1"\noutput_table = "a.b"\n'
        'mode = "merge"\n',
        r"step 'a' \(kind sql\): key 'keys' is required with mode = 'merge'",
    ),
    "bad table name": (
        '[[steps]]\nname = "a"\nkind = "sql"\nquery = "select 1"\noutput_table = "lakeloom.x"\n',
        r"key 'output_table': schema 'lakeloom' is reserved",
    ),
    "duplicate names": (
        '[[steps]]\nname = "a"\nkind = "sql"\nquery = "select 1"\noutput_table = "a.b"\n'
        '[[steps]]\nname = "a"\nkind = "sql"\nquery = "select 2"\noutput_table = "a.c"\n',
        r"step name 'a' is used twice \(steps 1 and 2\)",
    ),
    "unknown param": (
        '[[steps]]\nname = "a"\nkind = "generate_churn"\ncustomers = "${params.n}"\n',
        r"step 'a' \(kind generate_churn\): key 'customers' refers to \$\{params.n\}",
    ),
    "no steps": ("", r"no steps; add at least one \[\[steps\]\]"),
    "missing kind": ('[[steps]]\nname = "a"\n', r"step 'a': key 'kind' must be a string"),
    "missing name": ('[[steps]]\nkind = "sql"\n', r"step 1: key 'name' must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_files_name_the_file_step_and_key(tmp_path: Path, case: str) -> None:
    body, expected = BAD[case]
    path = _write(tmp_path, 'name = "p"\n' + body)
    with pytest.raises(PipelineError, match=expected) as err:
        load_pipeline(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="does not exist"):
        load_pipeline(tmp_path / "missing.toml")
    with pytest.raises(PipelineError, match="is not valid TOML"):
        load_pipeline(_write(tmp_path, "name = \n"))
    with pytest.raises(PipelineError, match="unknown top-level key 'kind'"):
        load_pipeline(_write(tmp_path, 'name = "p"\nkind = "sql"\n'))
    with pytest.raises(PipelineError, match="key 'name'"):
        load_pipeline(_write(tmp_path, '[[steps]]\nname = "a"\nkind = "sql"\n'))


def test_the_churn_example_is_valid() -> None:
    from lakeloom.demo import pipeline_path

    spec = load_pipeline(pipeline_path())
    assert spec.name == "churn"
    names = spec.step_names()
    assert names[:3] == ["generate", "demographics", "rfm"]
    for later in ("training_set", "train", "register", "gate"):
        assert later in names
    assert names.index("training_set") < names.index("train") < names.index("gate")


@dataclass(frozen=True)
class _EchoParams:
    text: str
    times: int = 1
    tags: list[str] = field(default_factory=list)


@pytest.fixture
def echo_kind() -> Iterator[None]:
    @step_kind("echo_test")
    def echo(ctx: StepContext, params: _EchoParams) -> str | None:
        """Repeat a text."""
        return params.text * params.times

    try:
        yield
    finally:
        steps_module._REGISTRY.pop("echo_test", None)


def test_a_new_kind_is_one_decorated_function(tmp_path: Path, echo_kind: None) -> None:
    assert registered_kinds()["echo_test"].summary == "Repeat a text."
    text = 'name = "p"\n[[steps]]\nname = "e"\nkind = "echo_test"\ntext = "hi"\ntags = ["a", 1]\n'
    with pytest.raises(
        PipelineError, match=r"key 'tags' must be a list of strings, got \['a', 1\]"
    ):
        load_pipeline(_write(tmp_path, text))
    spec = load_pipeline(_write(tmp_path, text.replace(", 1]", "]")))
    assert spec.steps[0].params == _EchoParams("hi", 1, ["a"])


def test_a_kind_can_be_a_class(echo_kind: None) -> None:
    @step_kind("class_test")
    class Shout:
        """Shout a text."""

        def run(self, ctx: StepContext, params: _EchoParams) -> str | None:
            return params.text.upper()

    try:
        kind = registered_kinds()["class_test"]
        assert kind.params is _EchoParams and kind.summary == "Shout a text."
    finally:
        steps_module._REGISTRY.pop("class_test", None)


def test_build_params_messages() -> None:
    with pytest.raises(ParamsError, match="missing required key 'text'") as err:
        build_params(_EchoParams, {})
    assert err.value.key == "text"
    assert build_params(_EchoParams, {"text": "x", "times": 2}).times == 2
    assert describe_type(int | None) == "an integer"
    assert describe_type(list[str]) == "a list of strings"
