"""Forecast advisories for a scenario's typhoon: what a forecast office would have issued.

Every ``interval_h`` (6 h) from the first best-track fix, while the storm exists, an
advisory gives the track from its issue time to ``horizon_h`` (48 h) ahead, hourly,
interpolated from the scenario's track and displaced by a forecast error that grows with
lead time::

    error(lead) = error_km_per_day · lead / 24 h     (70 km/day [A]: CMA's 24-h track error
                                                       is of that order in recent years)

in one direction per advisory (seeded: the same scenario gives the same advisories). The
intensity is the track's, unperturbed. Advisories are not sensor observations: a replay
publishes each on ``advisories`` at its issue time, before that minute's observations.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from datetime import datetime, timedelta

from schemas.advisory import AdvisoryPoint, StormAdvisory
from services.ingest.simulate.scenario import Scenario, TrackPoint

KM_PER_DEG_LAT = 111.2


def _interpolate(track: tuple[TrackPoint, ...], at: datetime) -> tuple[float, float, float] | None:
    if not track or at < track[0].time or at > track[-1].time:
        return None
    for a, b in itertools.pairwise(track):
        if a.time <= at <= b.time:
            span = (b.time - a.time).total_seconds()
            w = 0.0 if span == 0 else (at - a.time).total_seconds() / span
            return a.lon + w * (b.lon - a.lon), a.lat + w * (b.lat - a.lat), a.vmax_ms + w * (b.vmax_ms - a.vmax_ms)
    last = track[-1]
    return last.lon, last.lat, last.vmax_ms


def _bearing_rad(seed: int, issued_at: datetime) -> float:
    digest = hashlib.blake2b(f"{seed}:advisory:{issued_at.isoformat()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 2 * math.pi


def storm_advisories(
    scenario: Scenario,
    *,
    interval_h: float = 6.0,
    horizon_h: float = 48.0,
    step_h: float = 1.0,
    error_km_per_day: float = 70.0,
) -> list[StormAdvisory]:
    """The advisories issued during the scenario (empty without a typhoon)."""
    typhoon = scenario.typhoon
    if typhoon is None or not typhoon.track:
        return []
    track = typhoon.track
    first = max(track[0].time, scenario.start - timedelta(hours=interval_h))
    out: list[StormAdvisory] = []
    issued = first
    while issued <= min(track[-1].time, scenario.end):
        bearing = _bearing_rad(scenario.seed, issued)
        points: list[AdvisoryPoint] = []
        lead = 0.0
        while lead <= horizon_h:
            at = issued + timedelta(hours=lead)
            here = _interpolate(track, at)
            if here is None:
                break
            lon, lat, vmax = here
            error_km = error_km_per_day * lead / 24.0
            lat += error_km * math.cos(bearing) / KM_PER_DEG_LAT
            lon += error_km * math.sin(bearing) / (KM_PER_DEG_LAT * math.cos(math.radians(lat)))
            points.append(AdvisoryPoint(at=at, lon=round(lon, 4), lat=round(lat, 4), vmax_ms=round(vmax, 1)))
            lead += step_h
        if len(points) >= 2:
            out.append(
                StormAdvisory(
                    storm_id=scenario.name,
                    name=typhoon.name,
                    issued_at=issued,
                    points=tuple(points),
                    source="simulator",
                )
            )
        issued += timedelta(hours=interval_h)
    return [a for a in out if a.issued_at <= scenario.end]
