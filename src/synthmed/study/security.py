"""Password hashing (scrypt), one-time tokens, CSRF tokens bound to the session, and login rate limiting."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
CSRF_SESSION_KEY = "csrf"
CSRF_FORM_FIELD = "csrf_token"


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` (base64) of `password` with a fresh random salt."""
    if len(password) < 8:
        raise ValueError("passwords must have at least 8 characters.")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(digest)}"


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, checked when a name is unknown so that every login costs one scrypt."""
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches the `hash_password` string `stored` (constant-time compare).

    With no stored hash (unknown user, invitation not yet accepted) it still runs scrypt once, on a dummy
    hash, so the response time does not tell which names exist.
    """
    if not stored:
        verify_password(password, _dummy_hash())
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def new_token(nbytes: int = 24) -> str:
    """An unguessable URL-safe token."""
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """SHA-256 hex of a one-time token (the database stores this, never the token)."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session: dict) -> str:
    """The session's CSRF token, made on first use."""
    if CSRF_SESSION_KEY not in session:
        session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return session[CSRF_SESSION_KEY]


def csrf_ok(session: dict, submitted: str | None) -> bool:
    """True when `submitted` equals the session's CSRF token."""
    expected = session.get(CSRF_SESSION_KEY)
    return bool(expected and submitted and hmac.compare_digest(str(expected), str(submitted)))


class RateLimiter:
    """Failed logins per (role, name, address): after `max_attempts` failures within `window_s`, that key is
    locked for `base_lock_s`, doubling with every further failure up to `max_lock_s`.

    The key never covers a name alone (anyone could then lock the real user out from anywhere) nor an address
    alone (colleagues behind one hospital NAT would lock each other out).
    """

    def __init__(self, *, max_attempts: int, window_s: float, base_lock_s: float = 30.0, max_lock_s: float = 3600.0):
        self.max_attempts = max_attempts
        self.window_s = window_s
        self.base_lock_s = base_lock_s
        self.max_lock_s = max_lock_s
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(role: str, name: str, address: str) -> str:
        """The throttling key of one account seen from one address (names compared case-insensitively)."""
        return f"{role}\x00{name.strip().casefold()}\x00{address}"

    def _recent(self, key: str, now: float) -> deque[float]:
        """The key's failures still counted: those within `window_s`, or all while it was locked that recently."""
        failures = self._failures.setdefault(key, deque())
        if now - self._locked_until.get(key, float("-inf")) > self.window_s:
            while failures and now - failures[0] > self.window_s:
                failures.popleft()
        return failures

    def blocked_for_s(self, key: str) -> float:
        """Seconds until `key` may try again (0 when it may now)."""
        with self._lock:
            return max(0.0, self._locked_until.get(key, 0.0) - time.monotonic())

    def begin(self, key: str) -> float:
        """Start one sign-in attempt: 0 when it may go ahead (it then counts as in flight until `end`), else the
        seconds to wait. Failures and attempts still in flight count together, so simultaneous requests cannot
        slip more than `max_attempts` guesses past the check while the slow password hash runs."""
        now = time.monotonic()
        with self._lock:
            wait_s = self._locked_until.get(key, 0.0) - now
            if wait_s > 0:
                return wait_s
            in_flight = self._in_flight.get(key, 0)
            if len(self._recent(key, now)) + in_flight >= self.max_attempts:
                return 1.0  # the attempts in flight may lock the key; ask to retry shortly
            self._in_flight[key] = in_flight + 1
            return 0.0

    def end(self, key: str) -> None:
        """The attempt started by `begin` is over (record its outcome with `fail` or `reset` first)."""
        with self._lock:
            left = self._in_flight.get(key, 0) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)

    def blocked(self, key: str) -> bool:
        """True while `key` is locked."""
        return self.blocked_for_s(key) > 0

    MAX_KEYS = 100_000

    def fail(self, key: str) -> None:
        """Record one failed attempt; lock the key (with exponential backoff) once it has too many."""
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > self.MAX_KEYS:  # many made-up names: forget keys neither recent nor locked
                for old in [
                    k
                    for k, f in self._failures.items()
                    if (not f or now - f[-1] > self.window_s) and self._locked_until.get(k, 0.0) < now
                ]:
                    self._failures.pop(old, None)
                    self._locked_until.pop(old, None)
            failures = self._recent(key, now)
            failures.append(now)
            excess = len(failures) - self.max_attempts
            if excess >= 0:
                lock_s = min(self.max_lock_s, self.base_lock_s * 2.0 ** min(excess, 30))
                self._locked_until[key] = now + lock_s

    def reset(self, key: str) -> None:
        """Forget the failures of `key` (after a successful login)."""
        with self._lock:
            self._failures.pop(key, None)
            self._locked_until.pop(key, None)
