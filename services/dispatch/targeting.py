"""Targeting: township codes → the audiences each channel reaches, generated lazily.

A warning names township codes; each channel needs concrete targets. This module turns one
into the other from operator-loadable data (``AudienceData``) plus a township lookup
(``TownshipLookup``: code → name, county, population), without I/O and without keeping a
city's worth of strings in memory.

Audiences and their target ids
------------------------------

=================  ==============================  =====================================
audience           target id                       generated from
=================  ==============================  =====================================
public_sms         ``zone:<township>``             one operator cell-broadcast/zone SMS
                                                   per township (population = township's)
officials_sms      ``off:<official id>``           city → county → township → village
                                                   chain (~43,000 people city-wide, §5.2)
broadcast          ``ebt:<terminal id>``           synthetic terminals covering ≥ 95 % of
                                                   each township's population
app                device token (``tok_<hex>``)    subscriber count per township; tokens
                                                   are hashes, made on demand
webhook / apprise  configured subscriber id        ``AudienceData.static_targets``
=================  ==============================  =====================================

Determinism: every generated list is a pure function of ``(seed, township code, data)``,
via ``blake2b``/``random.Random`` seeded from a string, so two processes (or a restart)
produce the same targets and therefore the same delivery keys for the ledger.

Synthetic broadcast terminals (``broadcast_terminals``)
-------------------------------------------------------
1. ``rng = Random(f"{seed}:ebt:{township}")``.
2. Draw a terminal's covered population uniformly in
   ``[people_per_terminal_min, people_per_terminal_max]``.
3. Add terminals until their summed coverage reaches ``coverage_target × population``
   (the last terminal is trimmed so coverage never exceeds the population).
4. Cache the result per township (``lru_cache``, 512 townships) — ~10,000 terminals city-wide.

Officials (``officials_for``)
-----------------------------
The chain is ``city (C) → county (X) → township (T) → village (V)``. Ids encode the
position, so ``superior_of`` is arithmetic on the id and nothing is stored::

    OFF-C-330300-007                    city duty officer 7
    OFF-X-330304-012                    county official 12 of 瓯海区
    OFF-T-330304108-004                 township official 4 of 泽雅镇
    OFF-V-330304108-017-03              official 3 of village 17 of 泽雅镇

With the defaults (60 city, 120 per county, 30 per township, 12–28 villages per township
and 10 people per village) the 186 dissemination units give ≈ 44,000 people, matching the
~43,000 flood-control responsible persons of STANDARDS §5.2. Phone numbers are synthetic
(a hash), never real.
"""

from __future__ import annotations

import hashlib
import json
import random
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.common import TownshipCode
from schemas.delivery import DeliveryJob
from schemas.warning import WarningMessage

CITY_CODE = "330300"

# STANDARDS §5.1 (adcodes and names [S]).
COUNTY_NAMES_ZH: dict[str, str] = {
    "330302": "鹿城区",
    "330303": "龙湾区",
    "330304": "瓯海区",
    "330305": "洞头区",
    "330324": "永嘉县",
    "330326": "平阳县",
    "330327": "苍南县",
    "330328": "文成县",
    "330329": "泰顺县",
    "330381": "瑞安市",
    "330382": "乐清市",
    "330383": "龙港市",
}
COUNTY_NAMES_EN: dict[str, str] = {
    "330302": "Lucheng District",
    "330303": "Longwan District",
    "330304": "Ouhai District",
    "330305": "Dongtou District",
    "330324": "Yongjia County",
    "330326": "Pingyang County",
    "330327": "Cangnan County",
    "330328": "Wencheng County",
    "330329": "Taishun County",
    "330381": "Rui'an City",
    "330382": "Yueqing City",
    "330383": "Longgang City",
}


@dataclass(frozen=True, slots=True)
class TownshipInfo:
    """What dispatch needs to know about one township-level unit."""

    code: str
    name_zh: str
    county_code: str
    county_name_zh: str
    population: int


TownshipLookup = Mapping[str, TownshipInfo]
"""code → ``TownshipInfo``. A plain ``dict`` works; so does ``RegistryLookup``."""


class _RegistryTownship(Protocol):
    @property
    def name_zh(self) -> str: ...
    @property
    def county_code(self) -> str: ...
    @property
    def population(self) -> int: ...


class TownshipRegistry(Protocol):
    """The shape of ``services.common.geo.registry`` we rely on (duck-typed, not imported)."""

    def township(self, code: str) -> _RegistryTownship | None: ...


class RegistryLookup(Mapping[str, TownshipInfo]):
    """Adapts a geo registry (``.township(code)``) to ``TownshipLookup`` lazily.

    Only ``__getitem__``/``get`` are meaningful; iteration covers codes looked up so far.
    """

    def __init__(self, registry: TownshipRegistry, county_names_zh: Mapping[str, str] = COUNTY_NAMES_ZH) -> None:
        self._registry = registry
        self._county_names = county_names_zh
        self._cache: dict[str, TownshipInfo] = {}

    def __getitem__(self, code: str) -> TownshipInfo:
        hit = self._cache.get(code)
        if hit is not None:
            return hit
        try:
            town = self._registry.township(code)
        except LookupError as exc:
            raise KeyError(code) from exc
        if town is None:
            raise KeyError(code)
        info = TownshipInfo(
            code=code,
            name_zh=town.name_zh,
            county_code=town.county_code,
            county_name_zh=self._county_names.get(town.county_code, town.county_code),
            population=int(town.population),
        )
        self._cache[code] = info
        return info

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._cache))

    def __len__(self) -> int:
        return len(self._cache)


def county_of(code: str) -> str:
    """The 6-digit GB/T 2260 county code of a 9-digit township code."""
    return code[:6]


# --------------------------------------------------------------------------- data


class OfficialsShape(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    city_officials: int = Field(default=60, ge=1)
    per_county: int = Field(default=120, ge=1)
    per_township: int = Field(default=30, ge=1)
    villages_per_township_min: int = Field(default=12, ge=0)
    villages_per_township_max: int = Field(default=28, ge=0)
    per_village: int = Field(default=10, ge=0)


class AudienceData(BaseModel):
    """Operator-loadable audience data (JSON or TOML; see ``load_audience_data``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    app_subscribers: dict[TownshipCode, int] = Field(
        default_factory=dict, description="app subscribers per township; missing → share of population"
    )
    app_subscriber_share: float = Field(default=0.25, ge=0.0, le=1.0)
    broadcast_coverage_target: float = Field(default=0.95, gt=0.0, le=1.0)
    people_per_terminal_min: int = Field(default=400, ge=1)
    people_per_terminal_max: int = Field(default=1400, ge=1)
    officials: OfficialsShape = OfficialsShape()
    static_targets: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="channel → subscriber ids (webhook, apprise)"
    )


class AudienceDataError(ValueError):
    """Raised with the file name and the failing key."""


def load_audience_data(path: str | Path) -> AudienceData:
    """Load ``AudienceData`` from a ``.json`` or ``.toml`` file; errors name file and key."""
    file = Path(path)
    try:
        raw: Any = (
            tomllib.loads(file.read_text(encoding="utf-8"))
            if file.suffix == ".toml"
            else json.loads(file.read_text(encoding="utf-8"))
        )
    except (OSError, ValueError) as exc:
        raise AudienceDataError(f"{file}: cannot read audience data: {exc}") from exc
    try:
        return AudienceData.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise AudienceDataError(f"{file}: key {key!r}: {first['msg']}") from exc


# --------------------------------------------------------------------------- generators


@dataclass(frozen=True, slots=True)
class Terminal:
    terminal_id: str
    township_code: str
    covered_population: int


OfficialLevel = Literal["city", "county", "township", "village"]


@dataclass(frozen=True, slots=True)
class Official:
    official_id: str
    level: OfficialLevel
    county_code: str
    township_code: str | None
    phone: str
    superior_id: str | None


def _h(*parts: object, size: int = 8) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=size).digest()
    return int.from_bytes(digest, "big")


@lru_cache(maxsize=512)
def _terminals(seed: int, code: str, population: int, lo: int, hi: int, target: float) -> tuple[Terminal, ...]:
    rng = random.Random(f"{seed}:ebt:{code}")
    need = int(population * target + 0.999999)
    covered = 0
    out: list[Terminal] = []
    while covered < need:
        people = min(rng.randint(lo, max(lo, hi)), population - covered)
        out.append(Terminal(f"EBT{code}{len(out):04d}", code, people))
        covered += people
    return tuple(out)


def app_token(seed: int, township_code: str, index: int) -> str:
    """Device token ``index`` of a township: 32 hex digits of a keyed hash."""
    digest = hashlib.blake2b(f"{seed}:app:{township_code}:{index}".encode(), digest_size=16).hexdigest()
    return f"tok_{digest}"


def _phone(seed: int, official_id: str) -> str:
    return f"19{_h(seed, 'phone', official_id) % 10**9:09d}"


AudienceName = Literal["public_sms", "officials_sms", "broadcast", "app", "webhook", "apprise"]

DEFAULT_ROUTES: dict[str, tuple[AudienceName, ...]] = {
    "sms": ("public_sms", "officials_sms"),
    "broadcast": ("broadcast",),
    "app": ("app",),
    "webhook": ("webhook",),
    "apprise": ("apprise",),
}


class Targeting:
    """Township codes → per-channel targets, lazily, from ``AudienceData``."""

    def __init__(
        self,
        towns: TownshipLookup,
        data: AudienceData | None = None,
        routes: Mapping[str, Sequence[AudienceName]] | None = None,
    ) -> None:
        self.towns = towns
        self.data = data or AudienceData()
        self.routes: dict[str, tuple[AudienceName, ...]] = {
            k: tuple(v) for k, v in (routes if routes is not None else DEFAULT_ROUTES).items()
        }

    # -- per-township facts -------------------------------------------------

    def population(self, code: str) -> int:
        info = self.towns.get(code)
        return info.population if info is not None else 0

    def broadcast_terminals(self, code: str) -> tuple[Terminal, ...]:
        d = self.data
        return _terminals(
            d.seed,
            code,
            self.population(code),
            d.people_per_terminal_min,
            d.people_per_terminal_max,
            d.broadcast_coverage_target,
        )

    def broadcast_coverage(self, code: str) -> float:
        pop = self.population(code)
        return sum(t.covered_population for t in self.broadcast_terminals(code)) / pop if pop else 1.0

    def app_subscriber_count(self, code: str) -> int:
        if code in self.data.app_subscribers:
            return self.data.app_subscribers[code]
        return round(self.population(code) * self.data.app_subscriber_share)

    def app_tokens(self, code: str) -> Iterator[str]:
        """Generated on demand: a million subscribers never become a million stored strings."""
        for i in range(self.app_subscriber_count(code)):
            yield app_token(self.data.seed, code, i)

    def villages(self, code: str) -> int:
        o = self.data.officials
        span = max(0, o.villages_per_township_max - o.villages_per_township_min)
        return o.villages_per_township_min + _h(self.data.seed, "villages", code) % (span + 1)

    # -- officials -----------------------------------------------------------

    def _official(self, official_id: str) -> Official:
        parts = official_id.split("-")
        o = self.data.officials
        seed = self.data.seed
        kind = parts[1]
        if kind == "C":
            return Official(official_id, "city", CITY_CODE, None, _phone(seed, official_id), None)
        if kind == "X":
            county = parts[2]
            boss = f"OFF-C-{CITY_CODE}-{_h(seed, 'boss', county) % o.city_officials:03d}"
            return Official(official_id, "county", county, None, _phone(seed, official_id), boss)
        if kind == "T":
            town = parts[2]
            boss = f"OFF-X-{county_of(town)}-{_h(seed, 'boss', town) % o.per_county:03d}"
            return Official(official_id, "township", county_of(town), town, _phone(seed, official_id), boss)
        if kind == "V":
            town, village = parts[2], int(parts[3])
            boss = f"OFF-T-{town}-{village % o.per_township:03d}"
            return Official(official_id, "village", county_of(town), town, _phone(seed, official_id), boss)
        raise ValueError(f"not an official id: {official_id!r}")

    def official(self, official_id: str) -> Official:
        return self._official(official_id)

    def superior_of(self, official_id: str) -> Official | None:
        """The next person up the chain (for escalation), or None at the top."""
        boss = self._official(official_id).superior_id
        return None if boss is None else self._official(boss)

    def officials_for(self, township_codes: Sequence[str]) -> Iterator[Official]:
        """Village and township officials of each township, their counties' officials and
        the city's duty officers — each person once."""
        o = self.data.officials
        for k in range(o.city_officials):
            yield self._official(f"OFF-C-{CITY_CODE}-{k:03d}")
        seen_counties: set[str] = set()
        for code in dict.fromkeys(township_codes):
            county = county_of(code)
            if county not in seen_counties:
                seen_counties.add(county)
                for k in range(o.per_county):
                    yield self._official(f"OFF-X-{county}-{k:03d}")
            for k in range(o.per_township):
                yield self._official(f"OFF-T-{code}-{k:03d}")
            for v in range(self.villages(code)):
                for k in range(o.per_village):
                    yield self._official(f"OFF-V-{code}-{v:03d}-{k:02d}")

    def officials_count(self, township_codes: Sequence[str]) -> int:
        o = self.data.officials
        codes = list(dict.fromkeys(township_codes))
        counties = {county_of(c) for c in codes}
        return (
            o.city_officials
            + len(counties) * o.per_county
            + len(codes) * o.per_township
            + sum(self.villages(c) for c in codes) * o.per_village
        )

    # -- addresses -------------------------------------------------------------

    def sms_address(self, target_id: str) -> str:
        """What the SMS gateway gets in ``to``: a zone id or an official's phone."""
        if target_id.startswith("off:"):
            return self._official(target_id[4:]).phone
        return target_id

    # -- jobs ----------------------------------------------------------------

    def audience_targets(self, audience: AudienceName, township_codes: Sequence[str]) -> Iterator[tuple[str, str, int]]:
        """``(target_id, township_code, population)`` for one audience, lazily."""
        codes = list(dict.fromkeys(township_codes))
        if audience == "public_sms":
            for code in codes:
                yield f"zone:{code}", code, self.population(code)
        elif audience == "officials_sms":
            first = codes[0]
            for off in self.officials_for(codes):
                yield f"off:{off.official_id}", off.township_code or first, 1
        elif audience == "broadcast":
            for code in codes:
                for t in self.broadcast_terminals(code):
                    yield f"ebt:{t.terminal_id}", code, t.covered_population
        elif audience == "app":
            for code in codes:
                for token in self.app_tokens(code):
                    yield token, code, 1
        else:
            for target in self.data.static_targets.get(audience, ()):
                yield target, codes[0], 0

    def jobs(self, msg: WarningMessage, channel: str) -> Iterator[DeliveryJob]:
        """Delivery jobs of one message on one channel, lazily (``created_at`` = ``sent_at``)."""
        for audience in self.routes.get(channel, ()):
            for target_id, code, population in self.audience_targets(audience, msg.township_codes):
                yield DeliveryJob(
                    message_id=msg.message_id,
                    warning_id=msg.warning_id,
                    channel=channel,
                    target_id=target_id,
                    township_code=code,
                    population=population,
                    created_at=msg.sent_at,
                )

    def audience_size(self, msg: WarningMessage, channel: str) -> int:
        codes = list(dict.fromkeys(msg.township_codes))
        total = 0
        for audience in self.routes.get(channel, ()):
            if audience == "public_sms":
                total += len(codes)
            elif audience == "officials_sms":
                total += self.officials_count(codes)
            elif audience == "broadcast":
                total += sum(len(self.broadcast_terminals(c)) for c in codes)
            elif audience == "app":
                total += sum(self.app_subscriber_count(c) for c in codes)
            else:
                total += len(self.data.static_targets.get(audience, ()))
        return total
