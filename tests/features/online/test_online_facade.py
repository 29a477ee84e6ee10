"""``ws.features.get_online_features``: the SDK call goes straight to the online store."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakeloom import Workspace
from lakeloom.features import FeatureTableNotFound


def test_facade_checks_the_table_once_and_follows_drops(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = workspace.features
    fs.create_table(
        "features.profile",
        "customer_id",
        df=pa.table({"customer_id": [1, 2], "age": [30.0, 40.0]}),
    )
    fs.publish_table("features.profile")
    checks = []
    real_get = fs._tables.get

    def counted(name: str, **kw: object) -> object:
        checks.append(name)
        return real_get(name, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fs._tables, "get", counted)
    for _ in range(3):
        assert fs.get_online_features("features.profile", [2, 9]) == [
            {"customer_id": 2, "age": 40.0},
            None,
        ]
    assert fs.get_online_features("features.profile", iter([1]), ["age"]) == [
        {"customer_id": 1, "age": 30.0}
    ]
    assert checks == ["features.profile"]  # Delta metadata read once, not per call
    with pytest.raises(FeatureTableNotFound):
        fs.get_online_features("features.nope", [1])
    fs.drop_table("features.profile")
    with pytest.raises(FeatureTableNotFound):
        fs.get_online_features("features.profile", [1])
