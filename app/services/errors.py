"""Domain exceptions. Each carries a translatable message; one place (app.web)
maps them to HTTP status codes. Messages never contain personal data."""


class DomainError(Exception):
    status = 400

    def __init__(self, message, **params):
        super().__init__(message)
        self.message = message
        self.params = params

    def __str__(self) -> str:
        text = str(self.message)
        return text % self.params if self.params else text


class InvalidInput(DomainError):
    status = 400


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class TooManyAttempts(DomainError):
    """Sign-in refused while an account name or address waits; ``retry_after`` in seconds."""

    status = 429

    def __init__(self, message, retry_after: int = 0, **params):
        super().__init__(message, **params)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A peer the operation needs (a payment gateway) cannot be reached: nothing was done; try again later."""

    status = 503
