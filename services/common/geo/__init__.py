"""Wenzhou geography and monitoring-station registry.

* ``load_registry(data_dir)`` / ``default_registry()`` — validated registry with
  lookups and the point locator ``township_at`` (see ``registry.py``);
* ``synthetic_elevation_m`` — the synthetic [A] terrain used by the registry
  generator and the simulators (see ``terrain.py``);
* ``build_registry`` — the seeded generator of the files in ``data/``;
* ``cli.registry_app`` — ``earlywarn registry summary|validate``.
"""

from services.common.geo.registry import (
    DEFAULT_DATA_DIR,
    GeoRegistry,
    RegistryError,
    default_registry,
    load_registry,
)
from services.common.geo.terrain import local_xy_km, synthetic_elevation_m

__all__ = [
    "DEFAULT_DATA_DIR",
    "GeoRegistry",
    "RegistryError",
    "default_registry",
    "load_registry",
    "local_xy_km",
    "synthetic_elevation_m",
]
