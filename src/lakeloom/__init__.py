"""lakeloom: the machine-learning lifecycle on a Delta Lakehouse, local-first.

Start with :meth:`Workspace.open`.
"""

from lakeloom.errors import LakeloomError
from lakeloom.features.lookups import FeatureLookup
from lakeloom.workspace import Workspace

__version__ = "0.1.0"

__all__ = ["FeatureLookup", "LakeloomError", "Workspace", "__version__"]
