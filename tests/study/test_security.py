"""Password hashing, CSRF tokens and the login rate limiter."""

from __future__ import annotations

import time

import pytest

from synthmed.study.security import RateLimiter, csrf_ok, csrf_token, hash_password, token_digest, verify_password


def test_scrypt_hash_round_trip_and_salting():
    stored = hash_password("a long passphrase")
    assert stored.startswith("scrypt$") and "a long passphrase" not in stored
    assert verify_password("a long passphrase", stored)
    assert not verify_password("a long passphrasE", stored)
    assert hash_password("a long passphrase") != stored  # fresh salt each time
    assert not verify_password("x", None) and not verify_password("x", "garbage") and not verify_password("x", "")
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_csrf_token_is_bound_to_the_session():
    session, other = {}, {}
    token = csrf_token(session)
    assert csrf_token(session) == token and csrf_ok(session, token)
    assert not csrf_ok(other, token) and not csrf_ok(session, None) and not csrf_ok(session, token + "x")
    assert token_digest("abc") != "abc" and len(token_digest("abc")) == 64


def test_rate_limiter_locks_one_key_with_growing_backoff_and_forgets_after_window():
    limiter = RateLimiter(max_attempts=3, window_s=0.2, base_lock_s=0.1, max_lock_s=0.35)
    key, other = limiter.key("reader", "Alice ", "10.0.0.1"), limiter.key("reader", "alice", "10.0.0.2")
    assert key == limiter.key("reader", "alice", "10.0.0.1")
    for _ in range(3):
        assert not limiter.blocked(key)
        limiter.fail(key)
    assert limiter.blocked(key) and not limiter.blocked(other)
    assert 0.05 < limiter.blocked_for_s(key) <= 0.1
    limiter.fail(key)
    assert 0.15 < limiter.blocked_for_s(key) <= 0.2  # doubled
    limiter.fail(key)
    limiter.fail(key)
    assert limiter.blocked_for_s(key) <= 0.35  # capped
    limiter.reset(key)
    assert not limiter.blocked(key)
    for _ in range(2):
        limiter.fail(key)
    time.sleep(0.25)
    limiter.fail(key)  # the first two fell out of the window: no lock
    assert not limiter.blocked(key)


def test_simultaneous_attempts_cannot_pass_more_guesses_than_the_limit():
    """Cold-test finding: 40 wrong passwords sent at once all reached the password check (limit 5)."""
    limiter = RateLimiter(max_attempts=5, window_s=60)
    key = limiter.key("reader", "r13", "127.0.0.7")
    started = [limiter.begin(key) == 0.0 for _ in range(40)]  # all in flight at once, none finished yet
    assert sum(started) == 5
    for _ in range(5):
        limiter.fail(key)
        limiter.end(key)
    assert limiter.begin(key) > 1.0  # locked now
