"""Password hashing (scrypt), one-time tokens, CSRF tokens bound to the session, and login rate limiting."""

from __future__ import annotations

import base64
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


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches the `hash_password` string `stored` (constant-time compare)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                  dklen=32)
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
    """At most `max_attempts` failures per `window_s` seconds for each key (an IP or a user name)."""

    def __init__(self, *, max_attempts: int, window_s: float):
        self.max_attempts = max_attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and now - failures[0] > self.window_s:
            failures.popleft()
        return failures

    def blocked(self, *keys: str) -> bool:
        """True when any key has used up its failures in the current window."""
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(k, now)) >= self.max_attempts for k in keys)

    def fail(self, *keys: str) -> None:
        """Record one failed attempt against every key."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def reset(self, *keys: str) -> None:
        """Forget the failures of `keys` (after a successful login)."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
