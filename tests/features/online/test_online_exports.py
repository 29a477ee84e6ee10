"""The package's public face is what its docstring documents."""

from __future__ import annotations

import lakeloom.features.online as online


def test_exported_names_are_sorted_documented_and_present() -> None:
    assert online.__all__ == sorted(online.__all__)
    doc = online.__doc__ or ""
    for name in online.__all__:
        assert hasattr(online, name), name
        if name[0].islower() or name in ("OnlineStore", "PublishReport", "OnlineTableInfo"):
            assert name in doc, f"{name} is exported but not documented"
