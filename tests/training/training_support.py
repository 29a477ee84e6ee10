"""Helpers shared by the training tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from lakeloom import Workspace


def open_ml_workspace(root: Path, template: Path) -> Workspace:
    """A fresh workspace at ``root`` whose MLflow store starts as ``template``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, root / "mlflow.db")
    return Workspace.init(root)
