"""Mapping of the atproto SDK's exceptions (and raw httpx ones) onto mhchat's error tree.

The rule that matters: a write whose request may have reached the PDS (a read timeout, a dropped
connection after sending, a 500/502/504) is ``OutcomeUnknown``, never something to retry blindly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from atproto_client import exceptions as sdk  # type: ignore[import-untyped]
from atproto_client.models.common import XrpcError  # type: ignore[import-untyped]

from mhchat.errors import (
    AdapterError,
    AuthExpired,
    OutcomeUnknown,
    PermanentFailure,
    RateLimited,
    TransientFailure,
)

AUTH_TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_AUTH_ERRORS = frozenset(
    {
        "AuthMissing",
        "AuthRequired",
        "AuthenticationRequired",
        "AccountTakedown",
        "AccountDeactivated",
    }
)
# Failures that happen before a request is written: never an effect on the platform.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


def xrpc_error(exc: BaseException) -> tuple[int | None, str, str]:
    """(status, error, message) of an SDK request error; blanks when there was no answer."""
    response = getattr(exc, "response", None)
    if response is None:
        return None, "", ""
    content = response.content
    if isinstance(content, XrpcError):
        return response.status_code, str(content.error or ""), str(content.message or "")
    return response.status_code, "", ""


def is_token_error(exc: BaseException) -> bool:
    """An access or refresh token the PDS no longer accepts (refreshing may help)."""
    status, error, _ = xrpc_error(exc)
    return status in (400, 401) and error in AUTH_TOKEN_ERRORS


def _transport(exc: BaseException, *, write: bool, what: str) -> AdapterError:
    cause = exc if isinstance(exc, httpx.HTTPError) else exc.__cause__
    if isinstance(cause, _NOT_SENT):
        return TransientFailure(f"{what}: could not reach Bluesky ({type(cause).__name__})")
    if write:
        return OutcomeUnknown(
            f"{what}: no answer after the request was sent ({type(cause or exc).__name__}); "
            "it may have taken effect"
        )
    return TransientFailure(f"{what}: {type(cause or exc).__name__}")


def map_error(  # noqa: PLR0911 - one return per kind of failure reads as a table
    exc: BaseException, *, write: bool, what: str, now: datetime
) -> AdapterError:
    """Translate one SDK failure of call ``what`` into an ``AdapterError``."""
    if isinstance(exc, AdapterError):
        return exc
    if isinstance(exc, sdk.RateLimitExceededError):
        retry_at = exc.reset_at
        if retry_at is None and exc.retry_after is not None:
            retry_at = now + timedelta(seconds=exc.retry_after)
        return RateLimited(f"{what}: Bluesky rate limit exceeded", retry_at=retry_at)
    if isinstance(exc, sdk.LoginRequiredError):
        return AuthExpired(f"{what}: not logged in to Bluesky")
    status, error, message = xrpc_error(exc)
    detail = f"{what}: {status} {error}: {message}".rstrip(": ")
    if isinstance(exc, sdk.UnauthorizedError) or error in _AUTH_ERRORS | AUTH_TOKEN_ERRORS:
        return AuthExpired(detail)
    if isinstance(exc, sdk.BadRequestError):
        return PermanentFailure(detail)
    if isinstance(exc, sdk.NetworkError | httpx.TransportError) and status is None:
        return _transport(exc, write=write, what=what)
    if status is not None:
        if status in (500, 502, 504) and write:
            return OutcomeUnknown(f"{detail} (the write may have taken effect)")
        if status >= 500 or status in (408, 409):
            return TransientFailure(detail)
        return PermanentFailure(detail)
    if isinstance(exc, sdk.ModelError):
        if write:
            return OutcomeUnknown(f"{what}: unreadable answer to a write ({exc})")
        return TransientFailure(f"{what}: unreadable answer ({exc})")
    return TransientFailure(f"{what}: {type(exc).__name__}")
