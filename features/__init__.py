"""HF config.json (any supported causal-LM family) → one feature row per layer."""

from features.errors import FeatureError
from features.families import SUPPORTED_MODEL_TYPES
from features.featurize import feature_matrix, featurize
from features.schema import FEATURES, SCHEMA_HASH, SCHEMA_VERSION
from features.spec import ZOO_KEY, ArchSpec, count_parameters, read_spec

__all__ = [
    "FEATURES",
    "SCHEMA_HASH",
    "SCHEMA_VERSION",
    "SUPPORTED_MODEL_TYPES",
    "ZOO_KEY",
    "ArchSpec",
    "FeatureError",
    "count_parameters",
    "feature_matrix",
    "featurize",
    "read_spec",
]
