"""Facilitator sign-in: an argon2 password hash or a token from the environment, and a per-address
limit on failed attempts.

Run ``python -m mhchat.web.dashboard.auth`` to hash a password for
``MHCHAT_DASHBOARD_PASSWORD_HASH`` (it asks twice and prints only the hash).
"""

from __future__ import annotations

import getpass
import hmac
import sys
import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mhchat.web.dashboard.settings import DashboardSettings

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class Credentials:
    """Checks a submitted secret against the configured hash and/or token."""

    def __init__(self, settings: DashboardSettings) -> None:
        self._hash = settings.password_hash
        self._token = settings.token
        self.facilitators = settings.facilitators

    def check(self, secret: str) -> bool:
        ok = False
        if self._token is not None:
            # Constant time, and both checks always run so timing says nothing about which.
            ok = hmac.compare_digest(secret.encode(), self._token.encode())
        if self._hash is not None:
            try:
                _hasher.verify(self._hash, secret)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                pass
            else:
                ok = True
        return ok

    def facilitator(self, name: str) -> str | None:
        """The configured facilitator with this name (case-insensitive), if any."""
        wanted = name.strip().casefold()
        for known in self.facilitators:
            if known.casefold() == wanted:
                return known
        return None


class LoginLimiter:
    """At most ``attempts`` failed sign-ins per address within ``window`` seconds."""

    def __init__(
        self,
        attempts: int,
        window: float,
        *,
        now: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self._now = now
        self._max = max_addresses
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        found = self._failures.get(address)
        if found is None:
            return deque()
        cutoff = self._now() - self.window
        while found and found[0] <= cutoff:
            found.popleft()
        if not found:
            del self._failures[address]
        return found

    def retry_after(self, address: str) -> float:
        """Seconds this address must wait before trying again (0 when it may try now)."""
        recent = self._recent(address)
        if len(recent) < self.attempts:
            return 0.0
        return max(0.0, recent[0] + self.window - self._now())

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= self._max:
            # Bounded memory under a spray of addresses: forget the stalest one.
            stalest = min(self._failures, key=lambda a: self._failures[a][-1])
            del self._failures[stalest]
        self._failures.setdefault(address, deque()).append(self._now())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


def main() -> int:
    first = getpass.getpass("Dashboard password: ")
    if len(first) < 10:
        sys.stderr.write("Use at least 10 characters.\n")
        return 1
    if getpass.getpass("Again: ") != first:
        sys.stderr.write("The two entries differ.\n")
        return 1
    sys.stdout.write(hash_password(first) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
