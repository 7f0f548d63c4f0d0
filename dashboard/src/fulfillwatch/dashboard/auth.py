"""Who is signed in to the dashboard — the parts without Streamlit (unit-testable).

* :class:`UserAccounts` — per-user passwords, argon2-hashed (``argon2-cffi``), from a TOML file;
* :class:`LoginThrottle` — failed sign-ins limited per user and per address in a time window,
  shared by every session of the process (a new browser session does not reset it);
* :func:`proxy_user` — the user a trusted reverse proxy names in a header, only when the
  connection comes from that proxy.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_HASHER = PasswordHasher()
#: Verified when the user does not exist, so that an unknown name costs what a known one does.
_DUMMY_HASH = _HASHER.hash("fulfillwatch-no-such-user")
MAX_NAME = 128


class AccountsError(ValueError):
    """The users file cannot be used; the message says why."""


def hash_password(password: str) -> str:
    """An argon2id hash for the users file."""
    return _HASHER.hash(password)


class UserAccounts:
    """Per-user passwords, as argon2 hashes."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        self._hashes = dict(hashes)

    @classmethod
    def from_file(cls, path: Path) -> UserAccounts:
        """Read ``[users.<name>] password = "$argon2id$..."`` tables."""
        try:
            with path.open("rb") as handle:
                document = tomllib.load(handle)
        except FileNotFoundError:
            raise AccountsError(f"users file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise AccountsError(f"users file {path} is not valid TOML: {exc}") from None
        users = document.get("users", {})
        if not isinstance(users, dict):
            raise AccountsError(f"users file {path}: [users] must be a table of users")
        hashes: dict[str, str] = {}
        for name, entry in users.items():
            hashed = entry.get("password") if isinstance(entry, dict) else None
            if not isinstance(hashed, str) or not hashed.startswith("$argon2"):
                raise AccountsError(f"users file {path}: users.{name}.password must be an argon2 hash")
            hashes[name] = hashed
        return cls(hashes)

    def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s (an unknown name costs the same time)."""
        hashed = self._hashes.get(name)
        try:
            _HASHER.verify(hashed or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return False
        return hashed is not None


class LoginThrottle:
    """Failed sign-ins per user and per address within a sliding window."""

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"user": per_user, "address": per_address}
        self._window = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and now - failures[0] > self._window:
            failures.popleft()
        return failures

    def wait_s(self, user: str, address: str) -> float:
        """Seconds until this user may try again from this address (0: now)."""
        now = self._clock()
        with self._lock:
            waits = [0.0]
            for kind, value in (("user", user), ("address", address)):
                failures = self._recent((kind, value), now)
                if len(failures) >= self._limits[kind]:
                    waits.append(self._window - (now - failures[0]))
            return max(waits)

    def failed(self, user: str, address: str) -> None:
        """Count a failed sign-in."""
        now = self._clock()
        with self._lock:
            self._recent(("user", user), now).append(now)
            self._recent(("address", address), now).append(now)

    def succeeded(self, user: str) -> None:
        """A successful sign-in clears the user's failures (not the address's)."""
        with self._lock:
            self._failures.pop(("user", user), None)


def peer_address(ip_address: str | None) -> str:
    """The connection's address as Streamlit reports it (``None`` means loopback)."""
    return ip_address or "127.0.0.1"


def proxy_user(headers: Mapping[str, str], peer: str, header: str | None, trusted: Sequence[str]) -> str | None:
    """The user named by a trusted proxy's header, or ``None`` (not configured, not from the
    proxy, or no such header)."""
    if not header or not trusted:
        return None
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None
    if not any(address in ipaddress.ip_network(network, strict=False) for network in trusted):
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    user = lowered.get(header.lower(), "").strip()
    if not user or len(user) > MAX_NAME or not user.isprintable():
        return None
    return user
