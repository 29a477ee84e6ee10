"""What MLflow runs to load a feature-aware model ("models from code": nothing is unpickled).

:func:`lakeloom.features.feature_model.log_model` logs this file as the model's code; loading
the model runs it, which hands MLflow a fresh :class:`FeatureAwareModel` whose
``load_context`` then reads the feature spec and the wrapped model. Not meant to be imported.
"""

from mlflow.models import set_model

from lakeloom.features.feature_model import FeatureAwareModel

set_model(FeatureAwareModel())
