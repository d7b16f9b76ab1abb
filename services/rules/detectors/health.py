"""Sensor health per station, and the rule that keeps a faulty reading from warning alone.

Statuses, checked in this order (the first that holds wins)::

    spike        value > spike_ratio × median(previous M) + spike_floor,
                 or |value − previous| > max_step_change (a physically implausible jump)
    flatline     the last N values identical (± flatline_tolerance) and |value| ≥
                 flatline_min_abs_value (zero rain repeated is normal weather, not a fault)
    ok

    implausible  not judged here: a gauge's processor sees no other sensor. A gauge's
                 heavy-rain claim that the radars contradict is left out by the lifecycle
                 (``detectors.field``, ``lifecycle._implausible``) and reported to
                 ``obs.rejected`` with reason ``implausible_value``

    stale        (``check_stale``, on a tick or any later event time) no report for more
                 than stale_factor × expected_interval_s

Timeline of one rain gauge (rate mm/h per 5-min report; N = 4, M = 6)::

    t      00  05  10  15  20  25  30  35  40  45  50   55 ……………… 90
    value   0   2   3   2  300   4  24  24  24  24   3   (silence)
    status  ok  ok  ok  ok spike ok  ok  ok  ok  flat ok   stale after 3 × 5 min

Steps per report (``assess_health``):

1. Too late (older than ``newest - allowed_lateness_s``): ``None``. Otherwise upsert the
   value at its epoch second (a redelivery overwrites itself) and keep the last
   ``max(N, M) + 1`` reports: state is bounded by count (``flat_since`` remembers where a
   longer flat run began).
2. Evaluate at the report's own time with the reports up to it. ``since`` is when the
   status began (the first report of an identical run for flatline, the report itself for
   a spike, the last report for stale); ``gap_before_s`` records a silence the report ends.

Presets per observation kind (``DEFAULT_HEALTH``), all [A]: rain is assessed as a rate
(mm/h) so 1-min and 1-h gauges share thresholds; water level by step change (1 m between
reports); displacement by step change (50 mm between reports).

Downgrade rule (``downgrade``), precisely:

- ``ok``: the assessment is returned unchanged.
- ``stale``: certainty becomes ``Possible``; the level stays (the reading was sound when
  made; a gap only means window sums under-count, so the level is a lower bound).
- ``spike`` / ``flatline`` / ``implausible``: level becomes ``none``, certainty
  ``Unlikely``, ``onset_at`` cleared; the original evidence is kept and an
  ``Evidence(metric="suppressed_by_sensor_<status>", value=<rank of the level it had>)``
  is appended. The lifecycle takes a township's level as the highest over its sources,
  so a faulty source contributes nothing and **a township warning at a level needs at
  least one healthy (ok or stale) source at that level.** The marker keeps what the faulty
  gauge claimed visible to the duty officer, who can still issue a manual warning.
- Applying ``downgrade`` twice equals applying it once, and it never raises a level.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import Field

from schemas.assessment import Evidence, HazardAssessment
from schemas.common import LEVEL_RANK, UtcDatetime
from schemas.observations import GeoHazardObservation, RainObservation, WaterLevelObservation
from services.rules.detectors.common import (
    FrozenConfig,
    Table,
    epoch_s,
    from_epoch_s,
    new_table,
    newest_t,
    upsert_row,
)

HealthStatus = Literal["ok", "stale", "flatline", "spike", "implausible"]
FAULTY: frozenset[str] = frozenset({"flatline", "spike", "implausible"})
SUPPRESSED_PREFIX = "suppressed_by_sensor_"


class SensorHealth(FrozenConfig):
    station_id: str
    status: HealthStatus
    checked_at: UtcDatetime
    since: UtcDatetime | None = None
    detail: str = ""
    gap_before_s: int | None = Field(default=None, ge=0, description="silence ended by this report")


class HealthConfig(FrozenConfig):
    expected_interval_s: int = Field(default=300, gt=0)
    stale_factor: float = Field(default=3.0, gt=1.0)
    flatline_reports: int | None = Field(default=10, ge=2, description="N; None disables")
    flatline_tolerance: float = Field(default=0.0, ge=0.0)
    flatline_min_abs_value: float = Field(default=0.0, ge=0.0)
    spike_ratio: float | None = Field(default=None, gt=1.0, description="m × rolling median; None disables")
    spike_floor: float = Field(default=0.0, ge=0.0, description="absolute floor added to m × median")
    spike_median_reports: int = Field(default=12, ge=1, description="M previous reports in the median")
    max_step_change: float | None = Field(default=None, gt=0.0, description="physically implausible jump")
    allowed_lateness_s: int = Field(default=600, ge=0)


RAIN_HEALTH = HealthConfig(
    expected_interval_s=60,
    flatline_reports=10,
    flatline_min_abs_value=20.0,  # identical ≥ SHR-level rates (§1.6) for 10 reports
    spike_ratio=5.0,
    spike_floor=150.0,  # mm/h: convective onsets of 0 → 2 mm/min are real
)
WATER_LEVEL_HEALTH = HealthConfig(expected_interval_s=300, flatline_reports=24, max_step_change=1.0)
GEOHAZARD_HEALTH = HealthConfig(expected_interval_s=600, flatline_reports=None, max_step_change=50.0)
DEFAULT_HEALTH: dict[str, HealthConfig] = {
    "rain": RAIN_HEALTH,
    "water_level": WATER_LEVEL_HEALTH,
    "geohazard": GEOHAZARD_HEALTH,
}


def health_value(obs: RainObservation | WaterLevelObservation | GeoHazardObservation) -> float:
    """The scalar each kind is checked on: rain rate (mm/h), stage (m), displacement (mm)."""
    if isinstance(obs, RainObservation):
        return obs.rain_mm * 3600.0 / obs.interval_s
    if isinstance(obs, WaterLevelObservation):
        return obs.level_m
    return obs.displacement_mm


def new_health_state() -> Table:
    """Recent readings plus ``flat_since``: the start of a flat run longer than those held."""
    state = new_table("v")
    state["flat_since"] = None
    return state


def _kept(config: HealthConfig) -> int:
    return max(config.flatline_reports or 1, config.spike_median_reports) + 1


class Verdict(NamedTuple):
    """``assess_health`` without the model: what the hot path needs, and the rest."""

    status: HealthStatus
    since: int | None
    gap_before_s: int | None
    detail: str


def _median(values: list[float]) -> float:
    """``statistics.median`` (same arithmetic, no type dispatch)."""
    data = sorted(values)
    n = len(data)
    i = n // 2
    if n % 2 == 1:
        return data[i]
    return (data[i - 1] + data[i]) / 2


_OK = Verdict("ok", None, None, "")


def judge(at: int, value: float, state: Table, config: HealthConfig, detail: bool = True) -> Verdict | None:
    """Fold one reading (at epoch second ``at``) into ``state`` and judge the station.

    ``None``: too late to judge (the state is unchanged unless the reading was upserted).
    ``detail=False`` leaves ``Verdict.detail`` empty (the hot path needs the status only).
    """
    times: list[int] = state["t"]
    values_all: list[float] = state["v"]
    if times and at < times[-1] - config.allowed_lateness_s:
        return None
    if not times or at > times[-1]:
        times.append(at)
        values_all.append(value)
    else:
        upsert_row(state, at, {"v": value})
    surplus = len(times) - _kept(config)
    if surplus > 0:
        del times[:surplus]
        del values_all[:surplus]
    if times[-1] == at:
        index = len(times) - 1
    elif at in times:
        index = times.index(at)
    else:
        return None  # older than every reading kept: too late to judge
    is_newest = index == len(times) - 1
    values = values_all if is_newest else values_all[: index + 1]
    gap = at - times[index - 1] if index > 0 else None
    gap_before = gap if gap is not None and gap > config.stale_factor * config.expected_interval_s else None

    # spike: value > ratio × max(median, 0) + floor, which needs value > floor first
    ratio = config.spike_ratio
    if ratio is not None and index > 0 and value > config.spike_floor:
        median = _median(values[max(0, index - config.spike_median_reports) : index])
        if value > ratio * max(median, 0.0) + config.spike_floor:
            if is_newest:
                state["flat_since"] = None
            text = f"value {value:g} > {ratio:g} × median {median:g} + floor" if detail else ""
            return Verdict("spike", at, gap_before, text)
    step = config.max_step_change
    if step is not None and gap is not None and abs(value - values[index - 1]) > step:
        if is_newest:
            state["flat_since"] = None
        text = f"jump {value - values[index - 1]:+g} exceeds {step:g}" if detail else ""
        return Verdict("spike", at, gap_before, text)
    n = config.flatline_reports
    count = index + 1
    if n is not None and count >= n and abs(value) >= config.flatline_min_abs_value and value != 0.0:
        run = values[count - n : count]
        tolerance = config.flatline_tolerance
        if max(run) - min(run) <= tolerance:
            start = count - n
            while start > 0 and abs(values[start - 1] - value) <= tolerance:
                start -= 1
            since = times[start]
            held_since: int | None = state["flat_since"]
            if start == 0 and held_since is not None and held_since < since:
                since = held_since  # the run began before the oldest reading held
            if is_newest:
                state["flat_since"] = since
            text = f"identical readings of {value:g} since {since}" if detail else ""
            return Verdict("flatline", since, gap_before, text)
    if is_newest:
        state["flat_since"] = None
    if gap_before is None:
        return _OK
    return Verdict("ok", None, gap_before, f"reporting again after {gap_before} s" if detail else "")


def assess_health(
    station_id: str, observed_at: datetime, value: float, state: Table, config: HealthConfig
) -> SensorHealth | None:
    """Fold one reading into ``state`` (``new_health_state()``) and judge the station."""
    verdict = judge(epoch_s(observed_at), value, state, config)
    if verdict is None:
        return None
    return SensorHealth(
        station_id=station_id,
        status=verdict.status,
        checked_at=observed_at,
        since=from_epoch_s(verdict.since) if verdict.since is not None else None,
        detail=verdict.detail,
        gap_before_s=verdict.gap_before_s,
    )


def check_stale(station_id: str, state: Table, now: datetime, config: HealthConfig) -> SensorHealth:
    """Stale when nothing arrived for more than ``stale_factor × expected_interval_s``."""
    last = newest_t(state)
    now_s = epoch_s(now)
    if last is None:
        return SensorHealth(station_id=station_id, status="stale", checked_at=now, detail="never reported")
    silence = now_s - last
    if silence > config.stale_factor * config.expected_interval_s:
        return SensorHealth(
            station_id=station_id,
            status="stale",
            checked_at=now,
            since=from_epoch_s(last),
            detail=f"no report for {silence} s (expected every {config.expected_interval_s} s)",
        )
    return SensorHealth(station_id=station_id, status="ok", checked_at=now)


def downgrade(assessment: HazardAssessment, health: SensorHealth) -> HazardAssessment:
    """Apply the station's health to its assessment (rule in the module docstring)."""
    if health.status == "ok":
        return assessment
    if health.status == "stale":
        if assessment.certainty in ("Observed", "Likely"):
            return assessment.model_copy(update={"certainty": "Possible"})
        return assessment
    marker = f"{SUPPRESSED_PREFIX}{health.status}"
    if any(e.metric.startswith(SUPPRESSED_PREFIX) for e in assessment.evidence):
        return assessment.model_copy(update={"level": "none", "certainty": "Unlikely", "onset_at": None})
    mark = Evidence(
        station_id=assessment.source_id, metric=marker, value=float(LEVEL_RANK[assessment.level]), threshold=None
    )
    return assessment.model_copy(
        update={
            "level": "none",
            "certainty": "Unlikely",
            "onset_at": None,
            "evidence": (*assessment.evidence, mark),
        }
    )
