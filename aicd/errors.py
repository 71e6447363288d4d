"""User-facing errors: the CLI prints them as one line; the API maps them to 4xx."""


class AICDError(Exception):
    """An error caused by the user's input or environment, with a message fit to show as-is."""


class ConfigError(AICDError):
    """A configuration value is invalid; the message names the field."""


class DataError(AICDError):
    """A dataset file or record is malformed; the message names the file/line and field."""
