"""The ``train``, ``runs`` and ``models`` commands and the ``train``/``register``/``gate`` steps."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from tracking_support import Store

from lakeloom.cli import cli
from lakeloom.pipelines import load_pipeline, run_pipeline


def _run(store: Store, *args: object) -> Result:
    return CliRunner().invoke(cli, [*map(str, args), "--workspace", store.ws.root])


def _json(result: Result) -> object:
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_train_and_compare_commands(sqlite_store: Store) -> None:
    store = sqlite_store
    trained = _run(
        store, "train", "--table", "raw.churn", "--label", "churned", "--experiment", "cli",
        "--models", "logistic_regression,random_forest", "-p", "n_estimators=5",
        "-p", "random_forest.max_depth=3", "--json",
    )  # fmt: skip
    doc = _json(trained)
    assert isinstance(doc, dict)
    assert [r["model"] for r in doc["runs"]] == [
        doc["best"]["model"],
        *[r["model"] for r in doc["runs"][1:]],
    ]
    table = _run(store, "train", "--table", "raw.churn", "--label", "churned",
                 "--experiment", "cli", "--models", "logistic_regression")  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "logistic_regression" in table.stdout and "roc_auc" in table.stdout
    compared = _json(_run(store, "runs", "compare", "--experiment", "cli", "--metric",
                          "log_loss", "--json"))  # fmt: skip
    assert isinstance(compared, dict)
    losses = [r["log_loss"] for r in compared["runs"]]
    assert losses == sorted(losses) and len(losses) == 3
    printed = _run(store, "runs", "compare", "--experiment", "cli", "--metric", "roc_auc")
    assert printed.exit_code == 0 and "higher is better" in printed.stdout
    for args, text in [
        (("runs", "compare", "--experiment", "nope"), "experiment 'nope' does not exist"),
        (("runs", "compare", "--experiment", "cli", "--metric", "auc"), "metric 'auc'"),
        (("train", "--table", "raw.churn", "--label", "nope", "--experiment", "cli"), "'nope'"),
        (("train", "--table", "raw.churn", "--label", "churned", "--experiment", "cli",
          "--models", "svm"), "unknown model 'svm'"),
    ]:  # fmt: skip
        failed = _run(store, *args)
        assert failed.exit_code == 2, failed.output
        (line,) = [x for x in failed.stderr.splitlines() if x.startswith("error:")]
        assert text in line, failed.stderr
        assert "Traceback" not in failed.stderr


def test_model_commands(sqlite_store: Store, model_name: str) -> None:
    store = sqlite_store
    weak = _run(store, "models", "register", "--run", store.weak_run, "--name", model_name)
    assert weak.exit_code == 0, weak.output
    best = _json(_run(store, "models", "register", "--best", "--experiment", store.experiment,
                      "--metric", "roc_auc", "--name", model_name, "--json"))  # fmt: skip
    assert isinstance(best, dict) and best["version"] == 2
    listed = _json(_run(store, "models", "list", "--json"))
    assert isinstance(listed, list) and model_name in {m["name"] for m in listed}
    shown = _run(store, "models", "show", model_name)
    assert shown.exit_code == 0 and "roc_auc" in shown.stdout

    promoted = _run(store, "models", "promote", model_name, "--version", 1, "--alias",
                    "production", "--reason", "first release")  # fmt: skip
    assert promoted.exit_code == 0 and "-> v1" in promoted.stdout
    gated = _run(store, "models", "gate", model_name, "--candidate", 2, "--alias", "production",
                 "--metric", "roc_auc", "--min-improvement", "0.005",
                 "--holdout", "raw.holdout")  # fmt: skip
    assert gated.exit_code == 0, gated.output
    assert "PROMOTED" in gated.stdout
    refused = _run(store, "models", "gate", model_name, "--candidate", 1, "--holdout",
                   "raw.holdout", "--json")  # fmt: skip
    assert refused.exit_code == 1
    assert _json(refused) == {**_json(refused), "decision": "refused", "promoted": False}  # type: ignore[dict-item]
    error = _run(store, "models", "gate", model_name, "--candidate", 9, "--holdout", "raw.holdout")
    assert error.exit_code == 2 and "has no version 9" in error.stderr

    rolled = _run(store, "models", "rollback", model_name, "--alias", "production")
    assert rolled.exit_code == 0 and "v2 -> v1" in rolled.stdout
    history = _json(_run(store, "models", "history", model_name, "--json"))
    assert isinstance(history, list)
    assert [(e["kind"], e["from_version"], e["to_version"]) for e in history] == [
        ("promote", None, 1),
        ("gate", 1, 2),
        ("gate", 2, 2),
        ("rollback", 2, 1),
    ]
    assert history[0]["reason"] == "first release"
    table = _run(store, "models", "history", model_name)
    assert "(refused)" in table.stdout

    stage = _run(store, "models", "promote", model_name, "--version", 1, "--stage", "Production")
    assert stage.exit_code == 2
    assert f"use models:/{model_name}@production" in stage.stderr
    missing = _run(store, "models", "show", model_name + "zz")
    assert missing.exit_code == 2 and f"did you mean {model_name}" in missing.stderr


def test_train_register_gate_steps(sqlite_store: Store, tmp_path: Path, model_name: str) -> None:
    store = sqlite_store
    pipeline = tmp_path / "ml.toml"
    pipeline.write_text(
        f'''
name = "ml"

[[steps]]
name = "train"
kind = "train"
table = "raw.churn"
label = "churned"
experiment = "pipeline"
models = ["logistic_regression", "random_forest"]
hyperparameters = {{ random_forest = {{ n_estimators = 5 }} }}

[[steps]]
name = "register"
kind = "register"
model = "{model_name}"
experiment = "pipeline"
metric = "roc_auc"

[[steps]]
name = "gate"
kind = "gate"
model = "{model_name}"
holdout = "raw.holdout"
threshold = 0.6
'''
    )
    result = run_pipeline(store.ws, load_pipeline(str(pipeline)))
    messages = {r.step: r.message for r in result.records}
    assert "roc_auc:" in (messages["train"] or "")
    assert f"{model_name} v1" in (messages["register"] or "")
    assert "promoted" in (messages["gate"] or "")
    assert store.ws.registry.current(model_name, "production") == 1
    (event,) = store.ws.registry.history(model_name)
    assert event.kind == "gate" and event.details["decision"] == "promoted"
