"""The error features/ raises: archcast's input error, for a config."""

from contracts import ArchcastError


class FeatureError(ArchcastError):
    """A config cannot be turned into feature rows; `field` names the offending key (or "model_type")."""
