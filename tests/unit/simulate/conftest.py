"""Registries for the simulator tests: the small stand-in, and the real one (loaded once)."""

from __future__ import annotations

import pytest

from services.common.geo.registry import GeoRegistry, default_registry
from services.ingest.simulate.world.testing import MiniRegistry, mini_registry


@pytest.fixture(scope="session")
def mini() -> MiniRegistry:
    return mini_registry()


@pytest.fixture(scope="session")
def registry() -> GeoRegistry:
    return default_registry()
