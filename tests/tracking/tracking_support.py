"""Helpers shared by the tracking tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from lakeloom import Workspace


@dataclass
class Store:
    """A workspace on one kind of MLflow store, with runs to register."""

    kind: str
    ws: Workspace
    experiment: str
    good_run: str
    weak_run: str


def open_store_workspace(
    kind: str, root: Path, template: Path, server_url: str | None
) -> Workspace:
    """A workspace at ``root`` tracking to sqlite (from ``template``) or to the server."""
    root.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        shutil.copy(template, root / "mlflow.db")
        return Workspace.init(root)
    assert server_url is not None
    Workspace.init(root).close()
    settings = root / "lakeloom.toml"
    text = settings.read_text()
    assert 'tracking_uri = ""' in text
    settings.write_text(text.replace('tracking_uri = ""', f'tracking_uri = "{server_url}"', 1))
    ws = Workspace.open(root)
    assert ws.tracking.tracking_uri == server_url
    return ws
