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


def test_rate_limiter_blocks_after_failures_and_forgets_after_window():
    limiter = RateLimiter(max_attempts=3, window_s=0.2)
    for _ in range(3):
        assert not limiter.blocked("ip:1", "user:a")
        limiter.fail("ip:1", "user:a")
    assert limiter.blocked("ip:1") and limiter.blocked("user:a") and not limiter.blocked("ip:2", "user:b")
    limiter.reset("user:a")
    assert not limiter.blocked("user:a") and limiter.blocked("ip:1")
    time.sleep(0.25)
    assert not limiter.blocked("ip:1")
