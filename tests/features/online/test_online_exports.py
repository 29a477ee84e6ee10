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


def test_feature_package_imports_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lakeloom.features as f\n"
        "heavy = [m for m in ('lakeloom.features.store', 'lakeloom.features.training_set') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from lakeloom import FeatureLookup\n"
        "from lakeloom.features import FeatureLookup as F2, TrainingSet\n"
        "assert FeatureLookup is F2 and TrainingSet.__name__ == 'TrainingSet'\n"
        "assert 'lakeloom.features.training_set' in sys.modules\n"
        "assert sorted(f.__all__) == f.__all__ and all(hasattr(f, n) for n in f.__all__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
