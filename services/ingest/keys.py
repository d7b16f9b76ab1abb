"""Integrator API keys: who may send what, how fast — loaded from a TOML or JSON file.

An integrator sends ``X-API-Key: <id>.<secret>``. The file holds only the SHA-256 of the
secret (secrets are 256-bit random tokens, so a fast hash is enough: there is nothing to
brute-force), and the comparison is constant-time (``hmac.compare_digest``), also when the
id is unknown. A key carries its scope, turned into the gate's ``Scope``::

    [[keys]]
    id = "wz-hydro"                          # 1-32 of a-z 0-9 _ -; part of the API key
    integrator = "Wenzhou Hydrology Bureau"
    secret_sha256 = "9f86d0…"                # python -m services.ingest.keys new wz-hydro
    stations = ["WL-*", "TIDE-WZ-01"]        # exact ids, or prefixes ending in '*'; omit = all
    feeds = ["water_level_csv", "canonical"] # feed kinds (canonical = /v1/observations*); omit = all
    kinds = ["water_level"]                  # observation kinds; omit = all
    rate_per_s = 5.0                         # sustained requests per second …
    burst = 20                               # … and how many may come at once
    enabled = true

JSON is the same shape: ``{"keys": [{…}, …]}``. Every problem in the file raises
``KeyFileError`` naming the file, the key (its id, or its position when it has none), the
field and the reason; the service refuses to start rather than run with a half-read file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sys
import tomllib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.observations import ObservationKind
from services.ingest.gate import Scope

KEY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
DEFAULT_RATE_PER_S = 10.0
DEFAULT_BURST = 20


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the file, the key and the field."""


class IntegratorKey(BaseModel):
    """One integrator's key and what it may send."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=KEY_ID_PATTERN, description="key id: the part before the '.' of the API key")
    integrator: str = Field(min_length=1, max_length=200)
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the secret part")
    stations: tuple[str, ...] | None = Field(default=None, description="station ids or 'PREFIX*'; None = all")
    feeds: tuple[str, ...] | None = Field(default=None, description="feed kinds; None = all")
    kinds: tuple[ObservationKind, ...] | None = Field(default=None, description="observation kinds; None = all")
    rate_per_s: float = Field(default=DEFAULT_RATE_PER_S, gt=0.0, le=100_000.0, description="requests per second")
    burst: int = Field(default=DEFAULT_BURST, ge=1, le=1_000_000, description="requests at once")
    enabled: bool = True

    @field_validator("stations", "feeds", "kinds")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            msg = "an empty list allows nothing; omit the field to allow all"
            raise ValueError(msg)
        return value

    @field_validator("stations")
    @classmethod
    def _station_patterns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in value or ():
            if not pattern or pattern == "*" or "*" in pattern[:-1]:
                msg = f"{pattern!r}: use a station id or a prefix ending in a single '*' (omit the field for all)"
                raise ValueError(msg)
        return value

    def scope(self) -> Scope:
        """The gate's ``Scope`` for this key (stations by id or prefix, observation kinds)."""
        stations = None if self.stations is None else StationMatcher.of(self.stations)
        kinds = None if self.kinds is None else frozenset(self.kinds)
        return Scope(stations=stations, kinds=kinds)

    def may_use_feed(self, feed: str) -> bool:
        return self.feeds is None or feed in self.feeds


@dataclass(frozen=True, slots=True)
class StationMatcher:
    """Station ids a key may send for: exact ids, or prefixes (``RAIN-A*``). Used as ``Scope.stations``."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, patterns: Iterable[str]) -> StationMatcher:
        items = list(patterns)
        return cls(
            frozenset(p for p in items if not p.endswith("*")), tuple(sorted(p[:-1] for p in items if p.endswith("*")))
        )

    def __contains__(self, station_id: object) -> bool:
        return isinstance(station_id, str) and (station_id in self.exact or station_id.startswith(self.prefixes))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key(key_id: str) -> tuple[str, str]:
    """A fresh ``(api_key, secret_sha256)``: give the first to the integrator, store the second."""
    secret = secrets.token_urlsafe(32)
    return f"{key_id}.{secret}", hash_secret(secret)


_NO_KEY_DIGEST = hashlib.sha256(b"no such key").digest()


class KeyStore:
    """The loaded keys; ``authenticate`` maps a presented API key to its ``IntegratorKey``."""

    def __init__(self, keys: Iterable[IntegratorKey]) -> None:
        self._keys: dict[str, IntegratorKey] = {}
        self._digests: dict[str, bytes] = {}
        self._scopes: dict[str, Scope] = {}
        for key in keys:
            if key.id in self._keys:
                msg = f"key {key.id!r} is defined twice"
                raise KeyFileError(msg)
            self._keys[key.id] = key
            self._digests[key.id] = bytes.fromhex(key.secret_sha256)
            self._scopes[key.id] = key.scope()

    @classmethod
    def from_file(cls, path: str | Path) -> KeyStore:
        return cls(load_keys(path))

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[IntegratorKey]:
        return iter(self._keys.values())

    def get(self, key_id: str) -> IntegratorKey | None:
        return self._keys.get(key_id)

    def scope(self, key: IntegratorKey) -> Scope:
        return self._scopes[key.id]

    def authenticate(self, api_key: str | None) -> IntegratorKey | None:
        """The enabled key whose secret matches ``<id>.<secret>``, else ``None``.

        The digest comparison always runs (against a dummy when the id is unknown), so the
        time taken does not tell a caller which ids exist or how much of a secret matched.
        """
        if not api_key:
            return None
        key_id, _, secret = api_key.partition(".")
        presented = hashlib.sha256(secret.encode("utf-8", errors="replace")).digest()
        expected = self._digests.get(key_id, _NO_KEY_DIGEST)
        matches = hmac.compare_digest(presented, expected)
        key = self._keys.get(key_id)
        if key is None or not matches or not key.enabled:
            return None
        return key

    def check_feeds(self, known: Collection[str]) -> None:
        """Refuse keys that name feeds nobody registered (a typo would silently deny a feed)."""
        for key in self._keys.values():
            unknown = sorted(set(key.feeds or ()) - set(known))
            if unknown:
                msg = f"key {key.id!r}: feeds {unknown} are not registered (known: {', '.join(sorted(known))})"
                raise KeyFileError(msg)


def load_keys(path: str | Path) -> list[IntegratorKey]:
    """Read and validate a key file (``.toml`` or ``.json``); every error names the key."""
    file = Path(path)
    try:
        text = file.read_bytes()
    except OSError as exc:
        msg = f"{file}: cannot read the key file: {exc.strerror or exc}"
        raise KeyFileError(msg) from exc
    try:
        if file.suffix.lower() == ".json":
            document: Any = json.loads(text)
        else:
            document = tomllib.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "JSON" if file.suffix.lower() == ".json" else "TOML"
        msg = f"{file}: not valid {kind}: {exc}"
        raise KeyFileError(msg) from exc
    return parse_keys(document, str(file))


def parse_keys(document: Any, origin: str = "<keys>") -> list[IntegratorKey]:
    """Validate an already-parsed key document (``{"keys": [...]}`` or a bare list)."""
    entries = document.get("keys") if isinstance(document, dict) else document
    if isinstance(document, dict) and set(document) - {"keys"}:
        msg = f"{origin}: unknown top-level field(s) {sorted(set(document) - {'keys'})}; expected only 'keys'"
        raise KeyFileError(msg)
    if not isinstance(entries, list):
        msg = f"{origin}: expected a list of keys ([[keys]] tables in TOML, {{'keys': [...]}} in JSON)"
        raise KeyFileError(msg)
    keys: list[IntegratorKey] = []
    seen: dict[str, int] = {}
    for position, entry in enumerate(entries, start=1):
        label = _label(entry, position)
        if not isinstance(entry, dict):
            msg = f"{origin}: {label}: expected a table of fields, got {type(entry).__name__}"
            raise KeyFileError(msg)
        try:
            key = IntegratorKey.model_validate(entry)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<key>'}: {err['msg']}" for err in exc.errors()
            )
            msg = f"{origin}: {label}: {problems}"
            raise KeyFileError(msg) from exc
        if key.id in seen:
            msg = f"{origin}: key {key.id!r} is defined twice (entries {seen[key.id]} and {position})"
            raise KeyFileError(msg)
        seen[key.id] = position
        keys.append(key)
    return keys


def _label(entry: object, position: int) -> str:
    key_id = entry.get("id") if isinstance(entry, dict) else None
    return f"key {key_id!r} (entry {position})" if isinstance(key_id, str) else f"key entry {position} (no id)"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.ingest.keys new <id> [integrator]``: print a new key and its file entry."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "new":
        print("usage: python -m services.ingest.keys new <key-id> [integrator name]", file=sys.stderr)
        return 2
    key_id = args[1]
    integrator = " ".join(args[2:]) or key_id
    IntegratorKey(id=key_id, integrator=integrator, secret_sha256="0" * 64)  # validates the id
    api_key, digest = new_key(key_id)
    print(f"# give this API key to the integrator (shown once):\n# X-API-Key: {api_key}\n")
    print(f'[[keys]]\nid = "{key_id}"\nintegrator = "{integrator}"\nsecret_sha256 = "{digest}"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
