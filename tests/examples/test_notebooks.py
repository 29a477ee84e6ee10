"""The course's notebooks (examples/notebooks) run top to bottom, so they never rot.

Each notebook runs in a fresh Jupyter kernel of this interpreter (a kernelspec written to the
test's temporary folder), with the temporary folder as working directory and ``TMPDIR``, so
the workspaces the notebooks create land there. One meaningful output is checked per notebook.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "examples" / "notebooks"
#: The lakeloom modules a notebook may import: the public SDK.
PUBLIC = {
    "lakeloom",
    "lakeloom.automl",
    "lakeloom.datasets",
    "lakeloom.features",
    "lakeloom.training",
    "lakeloom.training.spark_ml",
}


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"no output matches {pattern!r}"
    return float(found.group(1))


def _first_model(out: str) -> None:
    assert _number(r"model logistic_regression: roc_auc (\d\.\d+)", out) > 0.6
    assert re.search(r"200 new customers, \d+ predicted to churn", out)


def _compare_and_register(out: str) -> None:
    assert re.search(
        r"gate: (promoted|refused) \(v2 0\.\d+ vs v1 0\.\d+ on 400 holdout rows\)", out
    )
    assert "production: v1 -> v2 -> rolled back to v1" in out


def _automl(out: str) -> None:
    assert _number(r"held-out roc_auc (\d\.\d+)", out) > 0.7
    assert "'promoted': True" in out


def _feature_store(out: str) -> None:
    before = _number(r"as of each label date: \{0: [\d.]+, 1: ([\d.]+)\}", out)
    latest = _number(r"latest snapshot\s+: \{0: [\d.]+, 1: ([\d.]+)\}", out)
    assert latest < before  # churned customers stop ordering: the latest rows leak that
    assert "1500 rows published" in out


def _batch_scoring(out: str) -> None:
    assert "200 rows scored into predictions.customer_churn v0 by churn_model v1" in out
    assert "same predictions: True" in out


def _spark_ml(out: str) -> None:
    assert _number(r"logistic_regression: held-out roc_auc (\d\.\d+)", out) > 0.6
    assert "'StandardScalerModel'" in out and "'LogisticRegressionModel'" in out


CASES: list[tuple[str, Callable[[str], None], int]] = [
    ("01_first_model_with_mlflow", _first_model, 600),
    ("02_compare_experiments_and_register", _compare_and_register, 600),
    ("03_automl", _automl, 600),
    ("04_feature_store_rfm", _feature_store, 600),
    ("05_batch_scoring", _batch_scoring, 600),
    ("06_spark_ml_pipeline", _spark_ml, 900),
]


def _params() -> list[object]:
    return [
        pytest.param(
            name,
            check,
            timeout,
            id=name[:2],
            marks=[pytest.mark.timeout(timeout), pytest.mark.slow]
            + ([pytest.mark.spark] if "spark" in name else []),
        )
        for name, check, timeout in CASES
    ]


def _kernel_dirs(tmp_path: Path) -> Path:
    """A ``python3`` kernelspec that runs this interpreter (the project's venv)."""
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (lakeloom tests)",
                "language": "python",
            }
        )
    )
    return spec.parent


def _outputs(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                parts.append(out["text"])
            elif "data" in out:
                parts.append(out["data"].get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize(("name", "check", "timeout"), _params())
def test_notebook_runs(
    name: str,
    check: Callable[[str], None],
    timeout: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(work))  # the kernel's tempfile.mkdtemp() lands here
    # A workspace opened earlier in this process exported its MLflow URI (mlflow does): the
    # kernel inherits the environment and must use its own workspace's store.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    km = KernelManager(
        kernel_name="python3",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(_kernel_dirs(tmp_path))]),
    )
    assert km.kernel_spec is not None and km.kernel_spec.argv[0] == sys.executable
    client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError (with the cell and traceback) on failure
    check(_outputs(nb))
    assert any(work.glob("lakeloom-*/ws/lakeloom.toml"))  # the workspace was in the tmp folder


def test_the_notebooks_are_the_six_exercises_and_commit_ready() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == [c[0] for c in CASES]
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path.name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        imported = set()
        for cell in code:
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.ImportFrom) and node.module:
                    imported.add(node.module)
                elif isinstance(node, ast.Import):
                    imported.update(a.name for a in node.names)
        private = {m for m in imported if m.split(".")[0] == "lakeloom"} - PUBLIC
        assert not private, f"{path.name} imports lakeloom internals: {sorted(private)}"
