"""The error tree. Adapters raise these; the core maps them to ledger states and health."""

from __future__ import annotations

from datetime import datetime


class MhchatError(Exception):
    """Base of every error mhchat raises on purpose."""


class ConfigError(MhchatError):
    """Configuration a host must fix; ``problems`` holds one plain sentence per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class MigrationError(MhchatError):
    """The database schema cannot be brought to this version safely."""


class DatabaseUnavailable(MhchatError):
    """The database cannot be opened or reached; the message says why, with no password."""


class AdapterError(MhchatError):
    """A platform call failed."""


class RateLimited(AdapterError):
    """The platform said to wait; ``retry_at`` is when to try again, if it said."""

    def __init__(self, message: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class AuthExpired(AdapterError):
    """Credentials are missing, wrong or expired: a human must renew them."""


class PermanentFailure(AdapterError):
    """The platform refused the request for good; retrying will not help."""


class NotAllowed(PermanentFailure):
    """The platform's own rules forbid this action (e.g. X replies need a mention)."""


class TransientFailure(AdapterError):
    """The request did not reach the platform or failed before any effect; safe to retry."""


class OutcomeUnknown(AdapterError):
    """The request may have reached the platform (timeout after sending): never blindly retry."""


class Unsupported(AdapterError):
    """The adapter cannot do this kind of action at all."""
