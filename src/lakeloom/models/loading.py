"""Loading a saved MLflow model folder with lakeloom's trust rules.

scikit-learn models saved with skops load with :data:`~lakeloom.models.trust.TRUSTED_TYPES`
(plus the types a caller passes), never with the list the model declares about itself.
Pickled scikit-learn models are refused unless ``allow_pickle=True`` (unpickling runs
arbitrary code). Other flavors load as MLflow pyfunc models (``predict`` only).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lakeloom.errors import InvalidArgument, UntrustedModelTypes
from lakeloom.models.trust import TRUSTED_TYPES, untrusted_message

__all__ = ["load_model_dir", "model_flavors"]


def model_flavors(local_dir: str | Path) -> dict[str, Any]:
    """The ``flavors`` section of the ``MLmodel`` file in ``local_dir``."""
    path = Path(local_dir) / "MLmodel"
    if not path.is_file():
        raise InvalidArgument(f"{local_dir} is not an MLflow model folder (no MLmodel file)")
    from mlflow.models import Model

    return dict(Model.load(str(path)).flavors)


def load_model_dir(
    local_dir: str | Path,
    *,
    trusted_types: Iterable[str] = (),
    allow_pickle: bool = False,
    what: str | None = None,
) -> Any:
    """The model in ``local_dir``: a scikit-learn estimator when it has that flavor.

    Raises :class:`~lakeloom.errors.UntrustedModelTypes` when the model names types that are
    neither lakeloom's nor in ``trusted_types``.
    """
    what = what or f"model {local_dir}"
    flavors = model_flavors(local_dir)
    sk = flavors.get("sklearn")
    if sk is None:
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(local_dir))
    data_path = Path(local_dir) / str(sk.get("pickled_model", "model.skops"))
    fmt = sk.get("serialization_format", "pickle")
    if fmt != "skops":
        if not allow_pickle:
            raise UntrustedModelTypes(
                f"{what} is saved with {fmt}, and unpickling a model can run any code; "
                "lakeloom loads only skops-saved models unless allow_pickle=True is passed for "
                "a model you trust"
            )
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(local_dir))
    import skops.io  # type: ignore[import-untyped]
    from skops.io.exceptions import UntrustedTypesFoundException  # type: ignore[import-untyped]

    trusted = sorted(TRUSTED_TYPES | set(trusted_types))
    try:
        return skops.io.load(data_path, trusted=trusted)
    except UntrustedTypesFoundException:
        found = set(skops.io.get_untrusted_types(file=data_path)) - set(trusted)
        raise UntrustedModelTypes(untrusted_message(what, found), found) from None
