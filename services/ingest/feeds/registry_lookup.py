"""Adapt the station registry (``services.common.geo.registry``) to the gate's ``StationLookup``.

Written against the registry's interface by duck typing, so ingest does not import the
geo package: ``registry.station(station_id)`` returns an object with ``.kind`` (``rain``,
``radar``, ``geohazard``, ``water_level``, ``tide``) and ``.township_code``, and returns
``None`` or raises ``KeyError`` for an unknown id.

Station kinds map onto the observation kinds the station may produce::

    rain → {rain}   radar → {radar}   geohazard → {geohazard}   water_level, tide → {water_level}

A station of a kind not in this table is still known (so it is not ``unknown_station``) but
may produce nothing: every observation for it is rejected as ``wrong_kind_for_station``,
naming the station, instead of being silently accepted or dropped.
"""

from __future__ import annotations

from typing import Protocol

from services.ingest.gate import StationLookup, StationRef

OBSERVATION_KINDS_BY_STATION_KIND: dict[str, frozenset[str]] = {
    "rain": frozenset({"rain"}),
    "radar": frozenset({"radar"}),
    "geohazard": frozenset({"geohazard"}),
    "water_level": frozenset({"water_level"}),
    "tide": frozenset({"water_level"}),
}


class StationLike(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def township_code(self) -> str | None: ...


class StationRegistryLike(Protocol):
    def station(self, station_id: str, /) -> StationLike | None: ...


def registry_lookup(registry: StationRegistryLike) -> StationLookup:
    """A ``StationLookup`` that asks ``registry`` on every call (so registry reloads show up).

    ``StationRef`` values are shared per (kind, township): the gate calls this once per
    observation, so it allocates nothing on the hot path after warm-up.
    """
    refs: dict[tuple[str, str | None], StationRef] = {}

    def lookup(station_id: str) -> StationRef | None:
        try:
            station = registry.station(station_id)
        except KeyError:
            return None
        if station is None:
            return None
        kind: object = station.kind
        key = (str(getattr(kind, "value", kind)), station.township_code)  # a str, a Literal or an Enum
        ref = refs.get(key)
        if ref is None:
            ref = StationRef(OBSERVATION_KINDS_BY_STATION_KIND.get(key[0], frozenset()), key[1])
            refs[key] = ref
        return ref

    return lookup
