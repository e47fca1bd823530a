"""HF config.json (any supported causal-LM family) → one feature row per layer."""

from contracts import ArchcastError
from features.errors import FeatureError
from features.families import SUPPORTED_MODEL_TYPES
from features.featurize import feature_matrix, featurize, spec_matrix
from features.schema import FEATURES, SCHEMA_HASH, SCHEMA_VERSION
from features.spec import ZOO_KEY, ArchSpec, count_parameters, read_spec

__all__ = [
    "FEATURES",
    "SCHEMA_HASH",
    "SCHEMA_VERSION",
    "SUPPORTED_MODEL_TYPES",
    "ZOO_KEY",
    "ArchSpec",
    "ArchcastError",
    "FeatureError",
    "count_parameters",
    "feature_matrix",
    "featurize",
    "read_spec",
    "spec_matrix",
]
