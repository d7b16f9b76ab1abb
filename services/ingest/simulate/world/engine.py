"""The world loop: one tick per simulated minute, streamed, never materialised.

::

    for t in start+60 s, start+120 s, …, end:                      (then drain late reports)
      1 rain grid R(t)                       fields.Atmosphere (typhoon + stratiform + terrain + cells)
      2 sample R at every point (bilinear); minute rain = ½(R(t−60) + R(t)) · 60 s
      3 truth: townships (rain, dBZ, wind), water gauges (true levels), slope failures
      4 state: gauge accumulators, slopes (R_eff, creep, failure), river reservoirs, surge
      5 reports due at t (each group on its own cadence) ─▶ faults ─▶ delivery queue
      6 radar scans due at t: window of R(t) ─▶ dBZ (Z–R) ─▶ faults ─▶ delivery queue
      7 yield Tick(at=t, everything whose delivery time is ≤ t)

Memory is bounded by the grid (a few 80 k-cell arrays), one day of hourly rain per slope
and the delivery queue (at most ``late_delay.max_s``, or the longest report interval if that
is longer, of delayed and held-back reports): a 24-h replay of the full network stays far
below 1 GB. Cadences are counted from ``start`` (a 360-s radar scans
at start + 6 min, + 12 min, …).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from schemas.observations import (
    GeoHazardObservation,
    ObservationBase,
    RadarScan,
    RainObservation,
    WaterLevelObservation,
)
from services.ingest.simulate.scenario import TICK_S, Scenario
from services.ingest.simulate.truth import GaugeSpec, GroundTruth
from services.ingest.simulate.world import faults, rng
from services.ingest.simulate.world.fields import Atmosphere, PointSet
from services.ingest.simulate.world.gauges import RainGauges
from services.ingest.simulate.world.geohazard import Slopes
from services.ingest.simulate.world.grid import build_grid
from services.ingest.simulate.world.hydrology import Rivers, Surge, Tide, water_spec
from services.ingest.simulate.world.network import RegistryLike, StationLike, select_network, stable_key
from services.ingest.simulate.world.radar import RadarSite, rate_to_dbz

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class Tick(NamedTuple):
    """Everything delivered at one instant of event time (one simulated minute)."""

    at: datetime
    observations: list[ObservationBase]
    raw: list[bytes]


def _elev(station: StationLike) -> float:
    return float(station.elevation_m)


class World:
    """The simulated Wenzhou world for one scenario and registry (build once, run once)."""

    def __init__(self, scenario: Scenario, registry: RegistryLike) -> None:
        self.scenario = scenario
        self.grid = build_grid(scenario.grid)
        self.atmosphere = Atmosphere(scenario, self.grid)
        self.network = net = select_network(scenario, registry)
        atm = self.atmosphere
        seed = scenario.seed
        sel = scenario.stations

        def points(stations: tuple[StationLike, ...]) -> PointSet:
            return atm.points(
                [s.station_id for s in stations],
                [s.lon for s in stations],
                [s.lat for s in stations],
                [_elev(s) for s in stations],
            )

        towns = net.townships
        self.towns = atm.points(
            [t.code for t in towns], [t.lon for t in towns], [t.lat for t in towns], [t.elevation_m for t in towns]
        )
        gust = scenario.typhoon.gust_factor if scenario.typhoon else (1.4, 1.6)
        self.gust_factor = gust
        self.aws = RainGauges(
            points(net.aws),
            [s.rain is None or s.rain.reports_wind for s in net.aws],
            sel.rain_aws_interval_s,
            scenario.noise,
            gust,
            seed,
        )
        self.mountain = RainGauges(
            points(net.mountain), [False] * len(net.mountain), sel.rain_mountain_interval_s, scenario.noise, gust, seed
        )
        self.slopes = Slopes(
            points(net.geohazard),
            [s.township_code for s in net.geohazard],
            [s.geohazard for s in net.geohazard],
            scenario.geohazard,
            scenario.noise,
            seed,
            scenario.start,
            sel.geohazard_interval_s,
        )
        river_specs = [water_spec(s.station_id, s.lon, s.lat, s.water) for s in net.rivers if s.water is not None]
        self.rivers = Rivers(self.grid, river_specs, scenario.hydrology)
        self.river_points = points(net.rivers)
        self.tide_points = points(net.tides)
        self.tide = Tide(scenario.tide)
        self.river_surge = Surge(scenario.surge, len(net.rivers))
        self.tide_surge = Surge(scenario.surge, len(net.tides))
        self.level_streams = rng.StationStreams(seed, rng.NOISE, [*self.river_points.ids, *self.tide_points.ids], 1)
        self.radars = [
            RadarSite.build(
                s.station_id, s.radar.band, s.lon, s.lat, s.radar.range_km, s.radar.scan_interval_s, self.grid
            )
            for s in net.radars
            if s.radar is not None
        ]

    # ---------------------------------------------------------------- run

    def run(self, truth: GroundTruth) -> Iterator[Tick]:
        sc = self.scenario
        net = self.network
        truth.begin(
            scenario=sc.name,
            seed=sc.seed,
            start=sc.start,
            end=sc.end,
            townships=self.towns.ids,
            wind_hazard=sc.wind_hazard,
            merge_gap_s=sc.truth.merge_gap_s,
            gust_factor=sum(self.gust_factor) / 2.0,
        )
        gauges = [
            GaugeSpec(
                s.station_id,
                s.township_code,
                "flood" if s.kind == "water_level" else "tide",
                s.water.warning_level_m,
                s.water.guaranteed_level_m,
                s.water.historical_max_m,
            )
            for s in (*net.rivers, *net.tides)
            if s.water is not None
        ]
        truth.add_gauges(gauges)
        groups = self._fault_groups(truth)
        for group in groups.values():
            group.describe_skews(sc.start, sc.end)
        queue = faults.DeliveryQueue(max_hold_s=self._max_hold_s())
        zr_a, zr_b, min_echo = sc.radar.zr_a, sc.radar.zr_b, sc.radar.min_echo_dbz
        sel = sc.stations
        atm = self.atmosphere

        start_s = int(sc.start.timestamp())
        end_s = int(sc.end.timestamp())
        rain_prev = atm.rain_grid(float(start_s))
        samples_prev = self._sample_all(rain_prev)
        self.rivers.step(0.0, rain_prev)

        t_s = start_s
        while t_s < end_s:
            t_s += TICK_S
            at = datetime.fromtimestamp(t_s, tz=sc.start.tzinfo)
            elapsed = t_s - start_s
            rain = atm.rain_grid(float(t_s))
            samples = self._sample_all(rain)
            minute = {k: 0.5 * (samples_prev[k] + samples[k]) * (TICK_S / 3600.0) for k in samples}
            samples_prev = samples

            # truth: townships
            town_wind = atm.wind_at(float(t_s), self.towns)
            town_dbz = rate_to_dbz(samples["towns"], zr_a, zr_b, min_echo)
            truth.observe_townships(at, minute["towns"], town_dbz, town_wind.speed_ms)

            # state
            self.aws.accumulate(minute["aws"])
            self.mountain.accumulate(minute["mountain"])
            self.slopes.step(at, minute["slopes"], truth)
            self.rivers.step(float(TICK_S), rain)
            levels = self._water_levels(float(t_s))
            truth.observe_gauges(at, levels)

            # reports
            if len(self.aws.points) and elapsed % sel.rain_aws_interval_s == 0:
                wind = atm.wind_at(float(t_s), self.aws.points)
                self._deliver(queue, groups["aws"], at, *self.aws.report(at, wind))
            if len(self.mountain.points) and elapsed % sel.rain_mountain_interval_s == 0:
                self._deliver(queue, groups["mountain"], at, *self.mountain.report(at, None))
            if len(self.slopes.points) and elapsed % sel.geohazard_interval_s == 0:
                self._deliver(queue, groups["geohazard"], at, *self.slopes.report(at))
            n_rivers = len(self.river_points)
            if n_rivers and elapsed % sel.water_level_interval_s == 0:
                self._deliver(queue, groups["rivers"], at, *self._level_reports(at, levels, 0, n_rivers))
            if len(self.tide_points) and elapsed % sel.tide_interval_s == 0:
                self._deliver(queue, groups["tides"], at, *self._level_reports(at, levels, n_rivers, len(levels)))
            for i, site in enumerate(self.radars):
                if elapsed % site.interval_s == 0:
                    self._deliver(queue, groups["radar"], at, *self._radar_report(site, i, elapsed, at, rain))

            observations, raw = queue.pop_ready(t_s)
            yield Tick(at, observations, raw)

        for group in groups.values():
            group.close_stuck(sc.end)
        queue.release_held(t_s)
        truth.finish()
        while len(queue):
            t_s += TICK_S
            observations, raw = queue.pop_ready(t_s)
            yield Tick(datetime.fromtimestamp(t_s, tz=sc.start.tzinfo), observations, raw)

    # ---------------------------------------------------------------- helpers

    def _max_hold_s(self) -> int:
        """How long an out-of-order report may wait for its station's next report: the late-delay
        bound, or the longest report interval if that is longer (whole ticks)."""
        sel = self.scenario.stations
        intervals = [sel.rain_aws_interval_s, sel.rain_mountain_interval_s, sel.geohazard_interval_s]
        intervals += [sel.water_level_interval_s, sel.tide_interval_s, *(r.interval_s for r in self.radars)]
        bound = max(math.ceil(self.scenario.faults.late_delay.max_s), *intervals)
        return math.ceil(bound / TICK_S) * TICK_S

    def _sample_all(self, rain: FloatArray) -> dict[str, FloatArray]:
        return {
            "towns": self.towns.sampler(rain),
            "aws": self.aws.points.sampler(rain),
            "mountain": self.mountain.points.sampler(rain),
            "slopes": self.slopes.points.sampler(rain),
        }

    def _water_levels(self, t_s: float) -> FloatArray:
        atm = self.atmosphere
        parts: list[FloatArray] = []
        if len(self.river_points):
            wind = atm.wind_at(t_s, self.river_points)
            forcing = self.river_surge.forcing(atm.pressure_at(t_s, self.river_points), atm.ambient_pressure_hpa, wind)
            surge = self.river_surge.step(float(TICK_S), forcing)
            parts.append(self.rivers.levels_m(self.tide.anomaly_m(t_s), surge))
        if len(self.tide_points):
            wind = atm.wind_at(t_s, self.tide_points)
            forcing = self.tide_surge.forcing(atm.pressure_at(t_s, self.tide_points), atm.ambient_pressure_hpa, wind)
            surge = self.tide_surge.step(float(TICK_S), forcing)
            parts.append(self.tide.level_m(t_s) + surge)
        return np.concatenate(parts) if parts else np.zeros(0)

    def _level_reports(
        self, at: datetime, levels: FloatArray, lo: int, hi: int
    ) -> tuple[IntArray, list[dict[str, Any]]]:
        idx = np.arange(lo, hi, dtype=np.intp)
        z = rng.normal_from_uniform(self.level_streams.draw(idx)[:, 0])
        measured = np.round(levels[lo:hi] + self.scenario.noise.water_level_sigma_m * z, 3)
        ids = (*self.river_points.ids, *self.tide_points.ids)
        reports = [{"station_id": ids[i], "observed_at": at, "level_m": float(measured[k])} for k, i in enumerate(idx)]
        return idx - lo, reports

    def _radar_report(
        self, site: RadarSite, index: int, elapsed: int, at: datetime, rain: FloatArray
    ) -> tuple[IntArray, list[dict[str, Any]]]:
        sc = self.scenario
        sigma = sc.noise.radar_dbz_sigma
        noise = None
        if sigma > 0.0:
            gen = rng.generator(sc.seed, rng.RADAR, stable_key(site.station_id), elapsed)
            noise = sigma * gen.standard_normal(site.shape)
        dbz = site.dbz(rain, sc.radar.zr_a, sc.radar.zr_b, sc.radar.min_echo_dbz, noise)
        return np.array([index], dtype=np.intp), [site.scan_fields(dbz, at)]

    def _fault_groups(self, truth: GroundTruth) -> dict[str, faults.FaultGroup]:
        sc = self.scenario

        def group(
            ids: tuple[str, ...],
            model: type[ObservationBase],
            values: tuple[str, ...],
            primary: str,
            spike: faults.SpikeFn | None,
        ) -> faults.FaultGroup:
            return faults.FaultGroup(
                station_ids=ids,
                model=model,
                value_fields=values,
                primary_field=primary,
                spike=spike,
                config=sc.faults,
                seed=sc.seed,
                truth=truth,
            )

        rain_values = ("rain_mm", "wind_mean_ms", "wind_gust_ms", "wind_dir_deg")
        return {
            "aws": group(self.aws.points.ids, RainObservation, rain_values, "rain_mm", faults.rain_spike),
            "mountain": group(self.mountain.points.ids, RainObservation, ("rain_mm",), "rain_mm", faults.rain_spike),
            "geohazard": group(
                self.slopes.points.ids,
                GeoHazardObservation,
                ("displacement_mm", "rain_mm"),
                "displacement_mm",
                faults.displacement_spike,
            ),
            "rivers": group(self.river_points.ids, WaterLevelObservation, ("level_m",), "level_m", faults.level_spike),
            "tides": group(self.tide_points.ids, WaterLevelObservation, ("level_m",), "level_m", faults.level_spike),
            "radar": group(tuple(r.station_id for r in self.radars), RadarScan, (), "dbz_b64", None),
        }

    @staticmethod
    def _deliver(
        queue: faults.DeliveryQueue,
        group: faults.FaultGroup,
        at: datetime,
        idx: IntArray,
        reports: list[dict[str, Any]],
    ) -> None:
        if not reports:
            return
        at_s = int(at.timestamp())
        for i, delivery in group.apply(at, idx, reports):
            queue.put(at_s, group.station_ids[i], delivery)


def iter_world(scenario: Scenario, registry: RegistryLike, truth: GroundTruth) -> Iterator[Tick]:
    """Stream the scenario's observations tick by tick (every 60 s of event time), filling ``truth``.

    Pure generation: no clock, no I/O. The iterator yields one ``Tick`` per simulated
    minute from ``start + 60 s`` to ``end``, then further ticks while late reports drain.
    ``truth`` is complete when the iterator is exhausted; if the consumer stops early,
    ``truth.events`` shows the running episodes closed at the last simulated minute.
    """
    world = World(scenario, registry)
    return world.run(truth)


def span_ticks(scenario: Scenario) -> int:
    return int((scenario.end - scenario.start) / timedelta(seconds=TICK_S))
