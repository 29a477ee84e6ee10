"""Short engine names to engine classes (imported lazily: Spark is an optional extra)."""

from __future__ import annotations

from lakeloom.engines.base import Engine
from lakeloom.errors import EngineUnavailable, SettingsError
from lakeloom.settings import Settings

__all__ = ["create_engine"]


def create_engine(settings: Settings) -> Engine:
    """The engine ``settings.engine`` names, configured from ``settings``."""
    if settings.engine == "local":
        from lakeloom.engines.local import LocalEngine

        return LocalEngine()
    if settings.engine == "spark":
        try:
            from lakeloom.engines.spark import SparkEngine
        except ImportError as exc:
            raise EngineUnavailable(
                f"the Spark engine needs pyspark ({exc.name or exc} is missing); "
                "install it with: pip install 'lakeloom[spark]'"
            ) from None
        return SparkEngine(settings.spark)
    raise SettingsError(f"engine {settings.engine!r} is not known; use 'local' or 'spark'")
