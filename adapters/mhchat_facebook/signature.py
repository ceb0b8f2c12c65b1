"""Meta's two signatures: ``X-Hub-Signature-256`` on webhooks and the data-deletion
``signed_request``. Both are HMAC-SHA256 keyed with the app secret, compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from mhchat_facebook import json_text

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign_body(body: bytes, app_secret: str) -> str:
    """The header value Meta sends for ``body``."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def signature_valid(body: bytes, header: str | None, app_secret: str) -> bool:
    """Check the header against the HMAC of the raw bytes.

    The digest is computed over the bytes as received: Meta escapes non-ASCII as ``\\uXXXX``
    and ``/`` as ``\\/``, so re-serialising parsed JSON would give another digest.
    """
    if not header or not header.startswith(_PREFIX):
        return False
    given = header[len(_PREFIX) :].strip().lower()
    # hmac.digest: OpenSSL's one-shot HMAC, without building an HMAC object per delivery.
    expected = hmac.digest(app_secret.encode(), body, "sha256").hex()
    # compare_digest refuses non-ASCII str; compare bytes so any header is just "wrong".
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletionRequest:
    """The verified content of a data-deletion ``signed_request``."""

    user_id: str
    issued_at: int | None


class BadSignedRequest(ValueError):
    """The signed_request is malformed or its signature does not match."""


def _b64url(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise BadSignedRequest("not base64url") from exc


def parse_signed_request(signed_request: str, app_secret: str) -> DeletionRequest:
    """Verify ``<base64url signature>.<base64url JSON payload>`` and return its content.

    The HMAC covers the *encoded* payload text, as in Meta's reference parser.
    """
    encoded_sig, sep, payload = signed_request.partition(".")
    if not sep or not encoded_sig or not payload:
        raise BadSignedRequest("not of the form signature.payload")
    signature = _b64url(encoded_sig)
    try:
        payload_bytes = payload.encode("ascii")
    except UnicodeEncodeError as exc:
        raise BadSignedRequest("payload is not ASCII") from exc
    expected = hmac.new(app_secret.encode(), payload_bytes, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise BadSignedRequest("signature mismatch")
    try:
        data = json_text.loads(_b64url(payload))
    except (ValueError, RecursionError) as exc:
        raise BadSignedRequest("payload is not JSON") from exc
    if not isinstance(data, dict):
        raise BadSignedRequest("payload is not an object")
    if str(data.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise BadSignedRequest("unexpected algorithm")
    user_id = data.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, str | int) or not str(user_id):
        raise BadSignedRequest("no user_id")
    issued = data.get("issued_at")
    issued_at = issued if isinstance(issued, int) and not isinstance(issued, bool) else None
    return DeletionRequest(user_id=str(user_id), issued_at=issued_at)


def confirmation_code(request: DeletionRequest, app_secret: str) -> str:
    """A stable alphanumeric code: a redelivered request gets the same code back."""
    material = f"data-deletion:{request.user_id}:{request.issued_at}".encode()
    return hmac.new(app_secret.encode(), material, hashlib.sha256).hexdigest()[:20]
