"""Passwords, users file, sessions and CSRF tokens."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from services.console.auth import (
    SessionSigner,
    UsersFileError,
    UserStore,
    csrf_ok,
    hash_password,
    parse_users,
    verify_password,
)
from services.console.testing import DEFAULT_PASSWORD, write_users

SECRET = b"0123456789abcdef-test-secret"


def test_hash_and_verify() -> None:
    encoded = hash_password("s3cret", n=2**10)
    assert encoded.startswith("scrypt$1024$8$1$")
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret ", encoded)
    assert not verify_password("", encoded)


def test_each_hash_has_its_own_salt() -> None:
    assert hash_password("same", n=2**10) != hash_password("same", n=2**10)


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param("", id="empty"),
        pytest.param("plain-text-password", id="not-a-hash"),
        pytest.param("bcrypt$10$8$1$abc$def", id="other-scheme"),
        pytest.param("scrypt$x$8$1$abc$def", id="bad-number"),
        pytest.param("scrypt$1000$8$1$abc$def", id="n-not-power-of-two"),
    ],
)
def test_malformed_hashes_never_verify(encoded: str) -> None:
    assert not verify_password("anything", encoded)


def test_users_file_round_trip_and_authenticate(tmp_path: Path) -> None:
    store = UserStore(write_users(tmp_path / "users.toml", {"li.na": "duty_officer"}))
    user = store.authenticate("li.na", DEFAULT_PASSWORD)
    assert user is not None
    assert user.role == "duty_officer"
    assert store.authenticate("li.na", "wrong") is None
    assert store.authenticate("nobody", DEFAULT_PASSWORD) is None


def test_users_file_changes_take_effect(tmp_path: Path) -> None:
    path = write_users(tmp_path / "users.toml", {"li.na": "duty_officer"})
    store = UserStore(path)
    assert store.get("li.na").role == "duty_officer"  # type: ignore[union-attr]
    write_users(path, {"li.na": "viewer"})
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert store.get("li.na").role == "viewer"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({}, "key 'users'", id="no-users"),
        pytest.param({"users": {"a": {"role": "boss", "password": "scrypt$1"}}}, "users.a.role", id="bad-role"),
        pytest.param({"users": {"a": {"role": "viewer", "password": "x"}}}, "users.a.password", id="bad-hash"),
    ],
)
def test_users_file_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(UsersFileError, match=message):
        parse_users(data, "users.toml")


def test_session_round_trip() -> None:
    signer = SessionSigner(SECRET, ttl_s=60)
    cookie, session = signer.issue("li.na", now=1000.0)
    read = signer.read(cookie, now=1059.0)
    assert read == session
    assert read is not None
    assert read.username == "li.na"


def test_session_expires() -> None:
    signer = SessionSigner(SECRET, ttl_s=60)
    cookie, _ = signer.issue("li.na", now=1000.0)
    assert signer.read(cookie, now=1060.0) is None
    assert signer.read(cookie, now=5000.0) is None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"), id="mac-changed"),
        pytest.param(lambda c: "x" + c, id="payload-changed"),
        pytest.param(lambda c: c.replace(".", ""), id="no-separator"),
        pytest.param(lambda c: "", id="empty"),
    ],
)
def test_tampered_sessions_are_rejected(mangle: object) -> None:
    signer = SessionSigner(SECRET, ttl_s=60)
    cookie, _ = signer.issue("li.na", now=1000.0)
    assert signer.read(mangle(cookie), now=1001.0) is None  # type: ignore[operator]


def test_a_session_from_another_secret_is_rejected() -> None:
    cookie, _ = SessionSigner(b"another-secret-of-enough-bytes", ttl_s=60).issue("li.na", now=1000.0)
    assert SessionSigner(SECRET, ttl_s=60).read(cookie, now=1001.0) is None


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SessionSigner(b"short", ttl_s=60)


def test_anonymous_csrf_tokens_are_signed() -> None:
    signer = SessionSigner(SECRET, ttl_s=60)
    token = signer.anonymous_csrf()
    assert signer.anonymous_csrf_valid(token)
    assert not signer.anonymous_csrf_valid(token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not signer.anonymous_csrf_valid("made-up")


def csrf_case(header: str | None, cookie: str | None, with_session: bool) -> bool:
    signer = SessionSigner(SECRET, ttl_s=60)
    _, session = signer.issue("li.na", now=1000.0)
    anonymous = signer.anonymous_csrf()
    resolve = {"S": session.csrf, "A": anonymous, "X": "attacker-token"}
    return csrf_ok(
        resolve.get(header or "", header), resolve.get(cookie or "", cookie), session if with_session else None, signer
    )


@pytest.mark.parametrize(
    ("header", "cookie", "with_session", "ok"),
    [
        pytest.param("S", "S", True, True, id="session-token"),
        pytest.param(None, "S", True, False, id="no-header"),
        pytest.param("S", None, True, False, id="no-cookie"),
        pytest.param("X", "X", True, False, id="planted-token-with-session"),
        pytest.param("A", "A", True, False, id="anonymous-token-once-signed-in"),
        pytest.param("A", "A", False, True, id="sign-in-form"),
        pytest.param("X", "X", False, False, id="unsigned-anonymous-token"),
        pytest.param("A", "S", False, False, id="header-cookie-mismatch"),
    ],
)
def test_csrf_double_submit(header: str | None, cookie: str | None, with_session: bool, ok: bool) -> None:
    assert csrf_case(header, cookie, with_session) is ok
