"""The ingest gate: raw payload -> canonical observation, or a rejection with its reason.

Steps, in order (the first failure decides the reason):

1. Parse and validate against the contract (``schemas.observations``): malformed JSON,
   wrong types and physically impossible values are refused with the field named.
2. Check the station against the registry: unknown stations, a payload whose kind the
   station cannot produce, or a station/kind outside the caller's scope are refused.
3. Check event time against the clock: too far in the future (clock skew) or too old.
4. Drop replayed duplicates (same station, kind and ``observed_at``) within a window.
5. Enrich from the registry (township) and return the observation.

Pure logic over a clock and a registry: the HTTP API, the replay driver and feed adapters
all pass through the same gate, so the rules are the same whatever the entry point.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Container, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from schemas.observations import OBSERVATION_ADAPTER, ObservationBase
from schemas.rejected import RejectedRecord
from services.common.rejects import describe_validation_error, rejection


@dataclass(frozen=True, slots=True)
class StationRef:
    """What the gate needs to know about a station."""

    kinds: frozenset[str]
    township_code: str | None


StationLookup = Callable[[str], StationRef | None]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a caller may send; ``None`` means unrestricted.

    ``stations`` is any container (a frozenset of ids, or a matcher of id prefixes such as
    ``services.ingest.keys.StationMatcher``); the gate only asks ``station_id in stations``.
    """

    stations: Container[str] | None = None
    kinds: frozenset[str] | None = None


Observation = ObservationBase


class IngestGate:
    def __init__(
        self,
        lookup: StationLookup,
        now: Callable[[], datetime],
        max_future_skew_s: int = 300,
        max_age_s: int = 7 * 86400,
        dedup_capacity: int = 500_000,
    ) -> None:
        self.lookup = lookup
        self.now = now
        self.max_future = timedelta(seconds=max_future_skew_s)
        self.max_age = timedelta(seconds=max_age_s)
        # Keys are (kind, station_id, observed_at): the same identity as ``obs.dedup_key``
        # (observed_at is normalised to UTC, so equal instants are equal keys) without
        # formatting a string per observation on the hot path.
        self._seen: OrderedDict[tuple[str, str, datetime], None] = OrderedDict()
        self._dedup_capacity = dedup_capacity

    def admit(self, raw: bytes | str, source: str, scope: Scope | None = None) -> ObservationBase | RejectedRecord:
        received_at = self.now()
        try:
            obs = OBSERVATION_ADAPTER.validate_json(raw)
        except ValidationError as exc:
            reason, detail, field = describe_validation_error(exc)
            return rejection(source=source, reason=reason, detail=detail, field=field, raw=raw, received_at=received_at)
        return self._admit(obs, source, raw, scope, received_at, owned=True)

    def admit_model(
        self,
        obs: ObservationBase,
        source: str,
        raw: bytes | str | None = None,
        scope: Scope | None = None,
        received_at: datetime | None = None,
    ) -> ObservationBase | RejectedRecord:
        return self._admit(obs, source, raw, scope, received_at or self.now(), owned=False)

    def _admit(
        self,
        obs: ObservationBase,
        source: str,
        raw: bytes | str | None,
        scope: Scope | None,
        received: datetime,
        owned: bool,
    ) -> ObservationBase | RejectedRecord:
        """Steps 2-5. ``owned``: ``obs`` was parsed here and nobody else holds it yet."""
        kind: str = obs.kind

        def refuse(reason: str, detail: str, field: str) -> RejectedRecord:
            payload = raw if raw is not None else obs.model_dump_json()
            return rejection(
                source=source,
                reason=reason,  # type: ignore[arg-type]  # callers pass RejectReason literals
                detail=detail,
                field=field,
                raw=payload,
                received_at=received,
            )

        station = self.lookup(obs.station_id)
        if station is None:
            return refuse("unknown_station", f"station_id {obs.station_id!r} is not in the registry", "station_id")
        if kind not in station.kinds:
            return refuse(
                "wrong_kind_for_station",
                f"kind: station {obs.station_id!r} does not produce {kind!r} observations",
                "kind",
            )
        if scope is not None:
            if scope.kinds is not None and kind not in scope.kinds:
                return refuse("forbidden_kind", f"this key may not send {kind!r} observations", "kind")
            if scope.stations is not None and obs.station_id not in scope.stations:
                return refuse(
                    "forbidden_station", f"this key may not send for station {obs.station_id!r}", "station_id"
                )
        if obs.observed_at > received + self.max_future:
            return refuse(
                "timestamp_future",
                f"observed_at {obs.observed_at.isoformat()} is more than "
                f"{int(self.max_future.total_seconds())} s ahead of {received.isoformat()}",
                "observed_at",
            )
        if obs.observed_at < received - self.max_age:
            return refuse(
                "timestamp_past",
                f"observed_at {obs.observed_at.isoformat()} is older than {self.max_age}",
                "observed_at",
            )
        key = (kind, obs.station_id, obs.observed_at)
        if key in self._seen:
            return refuse("duplicate", f"already received: {obs.dedup_key}", "observed_at")
        self._seen[key] = None
        if len(self._seen) > self._dedup_capacity:
            self._seen.popitem(last=False)
        if station.township_code is not None and obs.township_code != station.township_code:
            if owned:
                # Same result as model_copy(update=...) (which does not validate either), without
                # copying a model that was parsed a moment ago and is not shared: a third of the
                # gate's own cost per observation.
                object.__setattr__(obs, "township_code", station.township_code)
                obs.__pydantic_fields_set__.add("township_code")
            else:
                obs = obs.model_copy(update={"township_code": station.township_code})
        return obs

    def forget(self, obs: ObservationBase) -> None:
        """Drop an admitted observation from the duplicate memory.

        For a caller whose publication of ``obs`` failed: the sender will retry, and the
        retry must be admitted again rather than refused as a duplicate (at-least-once).
        """
        kind: str = obs.kind
        self._seen.pop((kind, obs.station_id, obs.observed_at), None)


def static_lookup(stations: Mapping[str, tuple[Collection[str], str | None]]) -> StationLookup:
    """A lookup over a fixed table ``station_id -> (kinds, township)`` (tests, small sims)."""
    table = {sid: StationRef(frozenset(kinds), township) for sid, (kinds, township) in stations.items()}
    return table.get
