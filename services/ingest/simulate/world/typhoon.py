"""A parametric typhoon moving along a best track: wind, pressure and rain [A].

Track: the best-track points are interpolated linearly in time (lat, lon, vmax, mslp,
radius of max wind); outside the track's time span there is no storm. The motion vector
comes from the bracketing pair of points.

Wind (Holland 1980, normalised so the peak equals the best-track wind)::

    x      = (Rmax / r)^B
    V(r)   = Vsym · sqrt(x · e^(1 − x))             peaks at r = Rmax with Vsym
    Vsym   = vmax − s·c                              c: translation speed, s: translation_share
    wind   = V · (cos β · ê_θ − sin β · ê_r)  +  s · (V / Vsym) · c⃗
    B      = ρ e (Vsym/0.8)² / Δp, clipped to [1.0, 2.2]   unless ``holland_b`` is given
             (0.8: surface/gradient wind ratio over the sea, since Holland's relation is
             for the gradient wind)

``ê_θ`` is counter-clockwise (northern hemisphere), β the inflow angle (20°). This is the
surface (10-m, 2-min) wind over open water, which is what CMA's ``vmax`` is; the world
reduces it over land (``land_wind_factor``, see ``fields.py``). Pressure follows the same
profile: ``p(r) = pc + Δp · exp(−(Rmax/r)^B)``.

Rain (an R-CLIPER-like core plus logarithmic-spiral bands)::

    Rr     = max(Rmax, 15 km)                         radius of maximum rain
    core   = min(1, (r/Rr)²) · exp(−max(0, r − Rr) / rain_radius_km)
    φ      = θ + ln(r/Rr) / tan(pitch) − 2π t / rainband_period_h
    bands  = ramp(r) · exp(−max(0, r − Rr) / rainband_radius_km) · ((1 + cos nφ) / 2)^4
    rain   = core_rain · (vmax/40)^k · (core + rainband_strength · bands)
             · (1 + asymmetry · cos(θ − θ_motion − 45°))        front-left enhanced

Bands spiral inward counter-clockwise and rotate with the storm once per
``rainband_period_h``, so a gauge under the outer circulation sees bursts as bands pass.
Terrain enhancement is applied by ``fields.py`` (it needs the wind on the grid).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.ingest.simulate.scenario import TrackPoint, TyphoonConfig

FloatArray = npt.NDArray[np.float64]

AIR_DENSITY = 1.15
SURFACE_TO_GRADIENT = 0.8  # 10-m wind / gradient-level wind over the sea [K]
KM_PER_DEG_LAT = 110.57
MIN_RAIN_RADIUS_KM = 15.0


@dataclass(frozen=True, slots=True)
class StormState:
    lon: float
    lat: float
    vmax_ms: float
    mslp_hpa: float
    rmw_km: float
    u_move_ms: float
    v_move_ms: float

    @property
    def speed_ms(self) -> float:
        return math.hypot(self.u_move_ms, self.v_move_ms)


class Track:
    """Time-linear interpolation of best-track points (epoch seconds in, ``StormState`` out)."""

    def __init__(self, points: Sequence[TrackPoint], default_rmw_km: float) -> None:
        self._t = [p.time.timestamp() for p in points]
        self._lon = [p.lon for p in points]
        self._lat = [p.lat for p in points]
        self._vmax = [p.vmax_ms for p in points]
        self._mslp = [p.mslp_hpa for p in points]
        self._rmw = [p.rmw_km if p.rmw_km is not None else default_rmw_km for p in points]

    def state(self, t: float) -> StormState | None:
        if t < self._t[0] or t > self._t[-1]:
            return None
        i = min(max(bisect.bisect_right(self._t, t) - 1, 0), len(self._t) - 2)
        t0, t1 = self._t[i], self._t[i + 1]
        w = (t - t0) / (t1 - t0)

        def lerp(values: list[float]) -> float:
            return values[i] + w * (values[i + 1] - values[i])

        lat = lerp(self._lat)
        dt = t1 - t0
        u = (self._lon[i + 1] - self._lon[i]) * 111.32e3 * math.cos(math.radians(lat)) / dt
        v = (self._lat[i + 1] - self._lat[i]) * KM_PER_DEG_LAT * 1e3 / dt
        return StormState(
            lon=lerp(self._lon),
            lat=lat,
            vmax_ms=lerp(self._vmax),
            mslp_hpa=lerp(self._mslp),
            rmw_km=lerp(self._rmw),
            u_move_ms=u,
            v_move_ms=v,
        )


def offsets_km(state: StormState, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """East/north offsets (km) of points from the storm centre (local flat projection)."""
    dx = (np.asarray(lon, dtype=np.float64) - state.lon) * 111.32 * math.cos(math.radians(state.lat))
    dy = (np.asarray(lat, dtype=np.float64) - state.lat) * KM_PER_DEG_LAT
    return dx, dy


def _symmetric_vmax(state: StormState, config: TyphoonConfig) -> float:
    return max(state.vmax_ms - config.translation_share * state.speed_ms, 0.5 * state.vmax_ms, 1.0)


def holland_b(state: StormState, config: TyphoonConfig) -> float:
    if config.holland_b is not None:
        return config.holland_b
    dp_pa = max(config.ambient_pressure_hpa - state.mslp_hpa, 1.0) * 100.0
    gradient = _symmetric_vmax(state, config) / SURFACE_TO_GRADIENT  # Holland's relation is for the gradient wind
    return float(np.clip(AIR_DENSITY * math.e * gradient * gradient / dp_pa, 1.0, 2.2))


def wind_uv(state: StormState, config: TyphoonConfig, dx: FloatArray, dy: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Surface wind over open water (m/s, eastward and northward components)."""
    r = np.maximum(np.hypot(dx, dy), 0.5)
    vsym = _symmetric_vmax(state, config)
    b = holland_b(state, config)
    x = (state.rmw_km / r) ** b
    speed = vsym * np.sqrt(x * np.exp(1.0 - x))
    cos_t = dx / r
    sin_t = dy / r
    beta = math.radians(config.inflow_angle_deg)
    cb, sb = math.cos(beta), math.sin(beta)
    u = speed * (-cb * sin_t - sb * cos_t)
    v = speed * (cb * cos_t - sb * sin_t)
    carry = config.translation_share * speed / vsym
    return u + carry * state.u_move_ms, v + carry * state.v_move_ms


def pressure_hpa(state: StormState, config: TyphoonConfig, dx: FloatArray, dy: FloatArray) -> FloatArray:
    r = np.maximum(np.hypot(dx, dy), 0.5)
    dp = max(config.ambient_pressure_hpa - state.mslp_hpa, 0.0)
    result: FloatArray = state.mslp_hpa + dp * np.exp(-((state.rmw_km / r) ** holland_b(state, config)))
    return result


def rain_rate_mm_h(state: StormState, config: TyphoonConfig, dx: FloatArray, dy: FloatArray, t_s: float) -> FloatArray:
    """Typhoon rain rate before terrain enhancement (mm/h)."""
    r = np.maximum(np.hypot(dx, dy), 0.5)
    r_rain = max(state.rmw_km, MIN_RAIN_RADIUS_KM)
    beyond = np.maximum(r - r_rain, 0.0)
    core = np.minimum(1.0, (r / r_rain) ** 2) * np.exp(-beyond / config.rain_radius_km)
    theta = np.arctan2(dy, dx)
    phase = (
        theta
        + np.log(r / r_rain) / math.tan(math.radians(config.rainband_pitch_deg))
        - 2.0 * math.pi * t_s / (config.rainband_period_h * 3600.0)
    )
    shape = (0.5 * (1.0 + np.cos(config.rainband_count * phase))) ** 4
    ramp = np.clip((r - 0.5 * r_rain) / r_rain, 0.0, 1.0)
    bands = ramp * np.exp(-beyond / config.rainband_radius_km) * shape
    heading = math.atan2(state.v_move_ms, state.u_move_ms) if state.speed_ms > 0.1 else 0.0
    asym = 1.0 + config.asymmetry * np.cos(theta - heading - math.pi / 4.0)
    scale = config.core_rain_mm_h * (max(state.vmax_ms, 10.0) / 40.0) ** config.rain_intensity_exponent
    result: FloatArray = scale * (core + config.rainband_strength * bands) * asym
    return result
