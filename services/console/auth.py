"""Sign-in, sessions, CSRF and the role matrix of the console.

Passwords
---------
A users file (TOML) holds one table per user::

    [users.zhangwei]             # the key after ``users.`` is the user name
    role = "duty_officer"        # viewer | duty_officer | approver | admin
    display_name = "张伟"
    password = "scrypt$16384$8$1$<salt, base64>$<hash, base64>"

``hash_password`` makes the ``password`` value (``python -m services.console.auth
hash-password`` prompts for one). Verification recomputes scrypt with the stored salt and
parameters and compares with ``hmac.compare_digest``; an unknown user name is checked
against a dummy hash, so a wrong name costs the same time as a wrong password.

Sessions
--------
A session is a signed cookie, not server state::

    ew_session = base64url(json {"u": user, "sid": …, "iat": …, "exp": …, "csrf": …})
                 "." base64url(HMAC-SHA256(secret, payload))

1. ``SessionSigner.issue`` writes it at sign-in; ``exp`` is ``iat + ttl``.
2. ``SessionSigner.read`` checks the MAC (constant time) and ``exp`` against the wall
   clock; a bad MAC, a malformed value or an expired session all read as "no session".
3. The role is *not* trusted from the cookie: each request looks the user up in the users
   file, so a removed user or a changed role takes effect at once.

CSRF (double submit, bound to the session)
------------------------------------------
Every state-changing request must carry ``X-CSRF-Token`` equal to the readable cookie
``ew_csrf``. Before sign-in that token is a server-signed random value (``GET
/api/csrf``); after sign-in it is the ``csrf`` field inside the signed session, so a token
planted by a sibling sub-domain does not match. A mismatch is 403.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from schemas.command import Role

ROLES: Final[tuple[Role, ...]] = get_args(Role)

Permission = Literal["read", "acknowledge", "cancel", "issue_manual", "approve", "reject", "replay", "audit"]

PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    "viewer": frozenset({"read"}),
    "duty_officer": frozenset({"read", "acknowledge", "cancel", "issue_manual", "replay"}),
    "approver": frozenset({"read", "issue_manual", "approve", "reject", "audit"}),
    "admin": frozenset(get_args(Permission)),
}
"""Who may do what. An approver may compose a manual warning (the lifecycle accepts one
from any role but a viewer); the two-person rule (nobody approves their own manual red
warning) is a rule about the warning, checked in ``services.console.actions`` and again
by the lifecycle."""


def allowed(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS[role]


# --------------------------------------------------------------------------- passwords

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SCRYPT_DKLEN: Final = 32
_SCRYPT_MAXMEM: Final = 128 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=SCRYPT_DKLEN, maxmem=_SCRYPT_MAXMEM
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; malformed hashes never match."""
    try:
        scheme, n_text, r_text, p_text, salt_text, digest_text = encoded.split("$")
        if scheme != "scrypt":
            return False
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = _unb64(salt_text), _unb64(digest_text)
        actual = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=_SCRYPT_MAXMEM
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH: Final = hash_password(secrets.token_hex(16))


# --------------------------------------------------------------------------- users


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    display_name: str
    password_hash: str

    @property
    def permissions(self) -> frozenset[Permission]:
        return PERMISSIONS[self.role]

    def can(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]


class UsersFileError(ValueError):
    """The users file is unreadable or wrong; the message names the file, key and reason."""


def parse_users(data: Mapping[str, object], source: str = "<users>") -> dict[str, User]:
    users_table = data.get("users")
    if not isinstance(users_table, Mapping):
        raise UsersFileError(f"{source}: key 'users': expected a table of users")
    out: dict[str, User] = {}
    for name, entry in _flatten_users(users_table):
        key = f"users.{name}"
        if not isinstance(entry, Mapping):
            raise UsersFileError(f"{source}: key {key!r}: expected a table")
        role = entry.get("role")
        if role not in ROLES:
            raise UsersFileError(f"{source}: key '{key}.role': {role!r} is not one of {', '.join(ROLES)}")
        password = entry.get("password")
        if not isinstance(password, str) or not password.startswith("scrypt$"):
            raise UsersFileError(f"{source}: key '{key}.password': expected an 'scrypt$…' hash (see hash_password)")
        display = entry.get("display_name", name)
        if len(name) > 64:
            raise UsersFileError(f"{source}: key {key!r}: user names are at most 64 characters")
        out[name] = User(name, role, str(display), password)
    return out


def _flatten_users(table: Mapping[str, object], prefix: str = "") -> list[tuple[str, object]]:
    """``[users.zhang.wei]`` parses as nested tables; a table with ``role`` is a user."""
    out: list[tuple[str, object]] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and "role" not in value and all(isinstance(v, Mapping) for v in value.values()):
            out.extend(_flatten_users(value, f"{name}."))
        else:
            out.append((name, value))
    return out


def load_users(path: Path) -> dict[str, User]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsersFileError(f"{path}: cannot read users file: {exc}") from exc
    return parse_users(data, str(path))


class UserStore:
    """The users file, re-read when it changes (checked at most once per request)."""

    def __init__(self, path: Path | None = None, users: Mapping[str, User] | None = None) -> None:
        self.path = path
        self._users: dict[str, User] = dict(users or {})
        self._mtime: float | None = None
        if path is not None:
            self._reload()

    def _reload(self) -> None:
        assert self.path is not None
        mtime = self.path.stat().st_mtime
        if mtime != self._mtime:
            self._users = load_users(self.path)
            self._mtime = mtime

    def get(self, username: str) -> User | None:
        if self.path is not None:
            # keep serving the last good file if an edit breaks it; start-up validated it
            with contextlib.suppress(OSError, UsersFileError):
                self._reload()
        return self._users.get(username)

    def authenticate(self, username: str, password: str) -> User | None:
        user = self.get(username)
        ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
        return user if ok and user is not None else None


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    sid: str
    issued_at: float
    expires_at: float
    csrf: str


class SessionSigner:
    """Signs and reads session cookies and pre-sign-in CSRF tokens (HMAC-SHA256)."""

    def __init__(self, secret: bytes, ttl_s: float) -> None:
        if len(secret) < 16:
            msg = "the session secret must be at least 16 bytes"
            raise ValueError(msg)
        self._key = hashlib.sha256(b"earlywarn-console-session\x00" + secret).digest()
        self._csrf_key = hashlib.sha256(b"earlywarn-console-csrf\x00" + secret).digest()
        self.ttl_s = ttl_s

    def _mac(self, key: bytes, payload: bytes) -> str:
        return _b64(hmac.new(key, payload, hashlib.sha256).digest())

    def issue(self, username: str, now: float) -> tuple[str, Session]:
        session = Session(username, secrets.token_hex(8), now, now + self.ttl_s, secrets.token_urlsafe(24))
        body = json.dumps(
            {"u": session.username, "sid": session.sid, "iat": now, "exp": session.expires_at, "csrf": session.csrf},
            separators=(",", ":"),
        ).encode("utf-8")
        payload = _b64(body)
        return f"{payload}.{self._mac(self._key, payload.encode('ascii'))}", session

    def read(self, cookie: str | None, now: float) -> Session | None:
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(self._key, payload.encode("ascii", "replace"))):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(
                str(data["u"]), str(data["sid"]), float(data["iat"]), float(data["exp"]), str(data["csrf"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        if now >= session.expires_at:
            return None
        return session

    def anonymous_csrf(self) -> str:
        """A signed random token for the sign-in form (before any session exists)."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac(self._csrf_key, nonce.encode('ascii'))}"

    def anonymous_csrf_valid(self, token: str) -> bool:
        nonce, _, mac = token.partition(".")
        return bool(nonce) and hmac.compare_digest(mac, self._mac(self._csrf_key, nonce.encode("ascii", "replace")))


def csrf_ok(header: str | None, cookie: str | None, session: Session | None, signer: SessionSigner) -> bool:
    """The double-submit rule of the module docstring."""
    if not header or not cookie or not hmac.compare_digest(header, cookie):
        return False
    if session is not None:
        return hmac.compare_digest(header, session.csrf)
    return signer.anonymous_csrf_valid(header)


def main(argv: list[str] | None = None) -> int:
    """``python -m services.console.auth hash-password``: print a users-file hash."""
    import getpass

    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["hash-password"]:
        print("usage: python -m services.console.auth hash-password", file=sys.stderr)
        return 2
    password = getpass.getpass("password: ")
    if password != getpass.getpass("again: "):
        print("passwords differ", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
