"""Hazard detectors: pure functions of (observation, per-key state) -> assessment."""

from services.rules.detectors.convection import (
    ConvectionConfig,
    TownshipPoints,
    assess_convection,
    dbz_to_rain_rate_mm_h,
    identify_cells,
    new_radar_state,
    nowcast_swaths,
    track_cells,
)
from services.rules.detectors.flood import WaterGaugeConfig, assess_water_level, river_gauge, tide_gauge
from services.rules.detectors.geohazard import (
    GeoHazardPointThresholds,
    assess_geohazard,
    new_point_state,
    township_geohazard_rollup,
)
from services.rules.detectors.health import SensorHealth, assess_health, check_stale, downgrade
from services.rules.detectors.short_heavy_rain import (
    ShortHeavyRainConfig,
    assess_short_heavy_rain,
    assess_short_heavy_rain_forecast,
)
from services.rules.detectors.wind import AdvisoryBook, WindConfig, assess_gale, assess_typhoon, assess_wind

__all__ = [
    "AdvisoryBook",
    "ConvectionConfig",
    "GeoHazardPointThresholds",
    "SensorHealth",
    "ShortHeavyRainConfig",
    "TownshipPoints",
    "WaterGaugeConfig",
    "WindConfig",
    "assess_convection",
    "assess_gale",
    "assess_geohazard",
    "assess_health",
    "assess_short_heavy_rain",
    "assess_short_heavy_rain_forecast",
    "assess_typhoon",
    "assess_water_level",
    "assess_wind",
    "check_stale",
    "dbz_to_rain_rate_mm_h",
    "downgrade",
    "identify_cells",
    "new_point_state",
    "new_radar_state",
    "nowcast_swaths",
    "river_gauge",
    "tide_gauge",
    "township_geohazard_rollup",
    "track_cells",
]
