"""Errors a user can act on. The CLI prints them as one line; the API maps them to 4xx."""


class TryonError(Exception):
    """Base class: the message is meant for a person and says what to do."""


class InputError(TryonError, ValueError):
    """Bad input: a malformed argument, an unusable file, a label that does not exist."""


class CheckpointError(TryonError):
    """A checkpoint is missing, incomplete, inconsistent or unsafe to load."""


class UnsafePickleError(CheckpointError):
    """A pickle asked for something outside the allow-list (code, an unknown class)."""


class LabelSchemaError(CheckpointError, InputError):
    """A label schema is malformed (in a checkpoint's config or a dataset's label_schema.json)."""


class ModelUnavailableError(TryonError):
    """No model to serve (none configured, or it cannot be loaded). The API answers 503."""


class TooManyRequestsError(TryonError):
    """The caller asked for more than it may now (requests a minute, jobs at a time); the API answers
    429 with `Retry-After: retry_after` (seconds)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
