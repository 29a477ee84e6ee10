"""The diabetes example pipeline, end to end through the runner, and its data step kind."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, PipelineError
from lakeloom.pipelines import load_pipeline, run_pipeline
from lakeloom.pipelines.kinds.datasets import DATASETS, load_sklearn_dataset

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "examples" / "diabetes" / "pipeline.toml"


@pytest.mark.slow
def test_the_diabetes_pipeline_runs_end_to_end_and_gates_a_second_version(
    workspace: Workspace,
) -> None:
    spec = load_pipeline(PIPELINE)
    assert spec.step_names() == [
        "load",
        "features",
        "split_train",
        "split_holdout",
        "train",
        "register",
        "gate",
    ]
    result = run_pipeline(workspace, spec)
    assert result.ok, [(r.step, r.error) for r in result.records]

    raw = workspace.tables.read("raw.diabetes").to_pandas()
    assert len(raw) == 442 and raw["row_id"].tolist() == list(range(442))
    features = {t.name: t for t in workspace.features.list_tables()}
    assert list(features["features.diabetes_patient"].primary_keys) == ["row_id"]
    train = set(workspace.tables.read("ml.diabetes_train").to_pandas()["row_id"])
    holdout = set(workspace.tables.read("ml.diabetes_holdout").to_pandas()["row_id"])
    assert not train & holdout and len(train | holdout) == 442
    assert holdout == {i for i in range(442) if i % 5 == 0}

    ranked = workspace.runs.compare("diabetes", "rmse")
    assert set(ranked["model"]) == {"linear_regression", "random_forest", "xgboost"}
    assert {"rmse", "mae", "r2", "mape"} <= set(ranked.columns)
    best = ranked.iloc[0]
    assert best["rmse"] == ranked["rmse"].min()  # lower is better

    # The first version has no rival: the gate promotes it because it passes the threshold.
    production = workspace.registry.resolve("models:/diabetes_model@production")
    assert production.version == 1 and production.run_id == best["run_id"]
    gate = next(r for r in result.records if r.step == "gate")
    assert gate.message is not None and "diabetes_model@production promoted" in gate.message

    # The same run again is not better by the margin: registered as v2, refused, v1 stays.
    again = run_pipeline(workspace, spec, from_step="register")
    assert again.ok
    assert workspace.registry.resolve("models:/diabetes_model/latest").version == 2
    assert workspace.registry.current("diabetes_model", "production") == 1
    refused = next(r for r in again.records if r.step == "gate")
    assert refused.message is not None and "diabetes_model@production refused" in refused.message
    history = workspace.registry.history("diabetes_model", "production")
    assert [e.to_version for e in history if e.moved] == [1]
    assert [(e.kind, e.details.get("candidate"), e.details.get("decision")) for e in history] == [
        ("gate", 1, "promoted"),
        ("gate", 2, "refused"),
    ]


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_bundled_dataset_loads_with_sql_friendly_columns(dataset: str) -> None:
    table = load_sklearn_dataset(dataset, label="y", id_column="id")
    names = table.column_names
    assert names[0] == "id" and names[-1] == "y" and len(set(names)) == len(names)
    assert all(n.isidentifier() and n == n.lower() for n in names)
    assert table.column("id").to_pylist() == list(range(table.num_rows))
    assert table.column("y").null_count == 0


def test_diabetes_comes_in_its_original_units() -> None:
    frame = load_sklearn_dataset("diabetes").to_pandas()
    assert set(frame["sex"]) == {1.0, 2.0}
    assert frame["age"].between(18, 90).all() and frame["bmi"].between(15, 50).all()


def test_an_unknown_dataset_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown dataset 'boston'; known: breast_cancer"):
        load_sklearn_dataset("boston")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('dataset = "boston"\ntable = "raw.x"', "dataset"),
        ('dataset = "iris"\ntable = "nodots"', "key 'table'"),
        ('dataset = "iris"\ntable = "raw.x"\nlabel = "my label"', "key 'label'"),
        ('dataset = "iris"\ntable = "raw.x"\nlabel = "id"\nid_column = "id"', "different"),
    ],
)
def test_bad_step_keys_fail_before_anything_runs(
    tmp_path: Path, workspace: Workspace, keys: str, message: str
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f'name = "p"\n[[steps]]\nname = "load"\nkind = "sklearn_dataset"\n{keys}\n')
    with pytest.raises(PipelineError, match=message) as err:
        load_pipeline(path)
    assert "step 'load'" in str(err.value) and "\n" not in str(err.value)
    assert workspace.tables.table_names() == []


def test_the_example_ships_in_the_wheel() -> None:
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    included = build["targets"]["wheel"]["force-include"]
    assert included["examples/diabetes/pipeline.toml"] == "lakeloom/examples/diabetes/pipeline.toml"


def test_a_label_or_id_named_like_a_feature_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="already has a feature column 'bmi'"):
        load_sklearn_dataset("diabetes", label="bmi")
