"""The one error type features/ raises: a ValueError that names the field."""


class FeatureError(ValueError):
    """A config cannot be turned into feature rows.

    `field` names the offending config key (or "model_type"), so callers such as
    the HTTP service can point the user at it.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
