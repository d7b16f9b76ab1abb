"""Feed registry: lazy, entry-point aware, loud on broken plug-ins; capabilities as class attributes."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import ClassVar

import pytest

from services.ingest.feeds import BUILTIN_FEEDS, DecodedItem, FeedAdapter, FeedPluginError, FeedRegistry


class SoilFeed(FeedAdapter):
    name: ClassVar[str] = "soil"
    content_types: ClassVar[tuple[str, ...]] = ("text/csv",)
    max_payload_bytes: ClassVar[int] = 1024
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"rain"})

    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        yield from ()


class MisnamedFeed(SoilFeed):
    name: ClassVar[str] = "other"


class Abstract(FeedAdapter):
    name: ClassVar[str] = "abstract"
    content_types: ClassVar[tuple[str, ...]] = ("text/csv",)
    max_payload_bytes: ClassVar[int] = 1024
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"rain"})


@pytest.fixture
def plugin_module() -> Iterator[str]:
    module = types.ModuleType("fake_feed_plugin")
    module.SoilFeed = SoilFeed  # type: ignore[attr-defined]
    module.MisnamedFeed = MisnamedFeed  # type: ignore[attr-defined]
    module.Abstract = Abstract  # type: ignore[attr-defined]
    module.NotAFeed = object  # type: ignore[attr-defined]
    sys.modules["fake_feed_plugin"] = module
    yield "fake_feed_plugin"
    del sys.modules["fake_feed_plugin"]


def eps(*pairs: tuple[str, str]) -> list[EntryPoint]:
    return [EntryPoint(name=n, value=v, group="earlywarn.feeds") for n, v in pairs]


def test_builtins_load_and_declare_capabilities_without_instantiating() -> None:
    loaded = FeedRegistry(discover=lambda group: []).load_all()
    assert (
        set(loaded)
        == set(BUILTIN_FEEDS)
        == {"canonical", "rain_csv", "water_level_csv", "geohazard_json", "radar_grid"}
    )
    for name, cls in loaded.items():
        assert cls.name == name
        assert cls.max_payload_bytes > 0
    assert loaded["radar_grid"].max_payload_bytes > loaded["rain_csv"].max_payload_bytes
    assert loaded["rain_csv"].observation_kinds == frozenset({"rain"})


def test_names_import_nothing(plugin_module: str) -> None:
    registry = FeedRegistry(builtins={}, discover=lambda group: eps(("soil", "not_imported_yet_xyz:Feed")))
    assert registry.names() == ["soil"]
    assert "soil" in registry
    assert "not_imported_yet_xyz" not in sys.modules


def test_entry_point_plugin_is_found_lazily(plugin_module: str) -> None:
    seen_groups: list[str] = []

    def discover(group: str) -> list[EntryPoint]:
        seen_groups.append(group)
        return eps(("soil", f"{plugin_module}:SoilFeed"))

    registry = FeedRegistry(discover=discover)
    assert registry.load("soil") is SoilFeed
    assert seen_groups == ["earlywarn.feeds"]


def test_the_same_builtin_registered_as_entry_point_is_fine() -> None:
    registry = FeedRegistry(discover=lambda group: eps(("rain_csv", BUILTIN_FEEDS["rain_csv"])))
    assert registry.load("rain_csv").name == "rain_csv"


def test_real_entry_points_are_read_from_the_installed_distribution() -> None:
    # Whatever pyproject declares under earlywarn.feeds must load (none declared is fine too).
    assert set(FeedRegistry().load_all()) >= set(BUILTIN_FEEDS)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("no_such_module_xyz:Thing", "cannot import", id="import-error"),
        pytest.param("fake_feed_plugin:Missing", "has no 'Missing'", id="missing-attribute"),
        pytest.param("fake_feed_plugin:NotAFeed", "not a FeedAdapter subclass", id="not-a-feed"),
        pytest.param("fake_feed_plugin", "not 'module:Class'", id="no-colon"),
        pytest.param("fake_feed_plugin:MisnamedFeed", "differs from registry name", id="misnamed"),
        pytest.param("fake_feed_plugin:Abstract", "abstract methods left", id="abstract"),
    ],
)
def test_broken_plugins_fail_loudly_naming_the_plugin(plugin_module: str, value: str, message: str) -> None:
    registry = FeedRegistry(discover=lambda group: eps(("soil", value)))
    with pytest.raises(FeedPluginError, match=message) as caught:
        registry.load_all()
    assert "'soil'" in str(caught.value)


def test_conflicting_entry_point_for_a_builtin_is_refused(plugin_module: str) -> None:
    registry = FeedRegistry(discover=lambda group: eps(("rain_csv", f"{plugin_module}:SoilFeed")))
    with pytest.raises(FeedPluginError, match="conflicts with"):
        registry.names()


def test_unknown_feed_names_the_known_ones() -> None:
    with pytest.raises(FeedPluginError, match="known: canonical"):
        FeedRegistry(discover=lambda group: []).load("wind_profiler")


def test_register_at_run_time(plugin_module: str) -> None:
    registry = FeedRegistry(discover=lambda group: [])
    registry.register("soil", f"{plugin_module}:SoilFeed")
    assert registry.load("soil") is SoilFeed
    with pytest.raises(FeedPluginError, match="already registered"):
        registry.register("soil", "elsewhere:Soil")
