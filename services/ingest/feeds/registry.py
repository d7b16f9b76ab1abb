"""Lazy feed registry: ``"name": "module:Class"`` plus the ``earlywarn.feeds`` entry-point group.

A name resolves to a class only when asked for (``load``); listing names imports nothing.
Built-ins are listed here *and* registered as entry points in ``pyproject.toml`` like any
plug-in. Loud failures, never a silent skip — each raises ``FeedPluginError`` naming the
plug-in:

- an entry point whose name is a built-in's but whose target differs (a conflict);
- a target that is not ``module:Class``, a module that fails to import, a missing attribute;
- a class that is not a ``FeedAdapter`` or declares bad capabilities (``check_class``), or
  whose ``name`` differs from its registry name.

Call ``load_all()`` at start-up (the HTTP API does) so a broken plug-in stops the service
before the first payload instead of failing on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points

from services.ingest.feeds.base import FeedAdapter, check_class

ENTRY_POINT_GROUP = "earlywarn.feeds"

BUILTIN_FEEDS: dict[str, str] = {
    "canonical": "services.ingest.feeds.canonical:CanonicalFeed",
    "rain_csv": "services.ingest.feeds.rain_csv:RainCsvFeed",
    "water_level_csv": "services.ingest.feeds.water_level_csv:WaterLevelCsvFeed",
    "geohazard_json": "services.ingest.feeds.geohazard_json:GeoHazardJsonFeed",
    "radar_grid": "services.ingest.feeds.radar_grid:RadarGridFeed",
}


class FeedPluginError(RuntimeError):
    """A feed plug-in is broken or conflicts with another; the message names it."""


def _group_entry_points(group: str) -> Iterable[EntryPoint]:
    return entry_points(group=group)


class FeedRegistry:
    def __init__(
        self,
        builtins: Mapping[str, str] = BUILTIN_FEEDS,
        group: str = ENTRY_POINT_GROUP,
        discover: Callable[[str], Iterable[EntryPoint]] = _group_entry_points,
    ) -> None:
        self._builtins = dict(builtins)
        self._group = group
        self._discover = discover
        self._specs: dict[str, str] | None = None
        self._loaded: dict[str, type[FeedAdapter]] = {}

    def specs(self) -> dict[str, str]:
        """name → ``module:Class`` (built-ins merged with entry points; nothing imported)."""
        if self._specs is None:
            specs = dict(self._builtins)
            for ep in self._discover(self._group):
                known = specs.get(ep.name)
                if known is not None and known != ep.value:
                    msg = f"feed {ep.name!r}: entry point {ep.value!r} ({self._group}) conflicts with {known!r}"
                    raise FeedPluginError(msg)
                specs[ep.name] = ep.value
            self._specs = specs
        return dict(self._specs)

    def names(self) -> list[str]:
        return sorted(self.specs())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.specs()

    def register(self, name: str, spec: str) -> None:
        """Add a feed at run time (tests, embedding); same rules as entry points."""
        specs = self.specs()
        if name in specs and specs[name] != spec:
            msg = f"feed {name!r} already registered as {specs[name]!r}"
            raise FeedPluginError(msg)
        assert self._specs is not None
        self._specs[name] = spec

    def load(self, name: str) -> type[FeedAdapter]:
        if name in self._loaded:
            return self._loaded[name]
        specs = self.specs()
        if name not in specs:
            msg = f"no feed named {name!r} (known: {', '.join(sorted(specs))})"
            raise FeedPluginError(msg)
        spec = specs[name]
        module_name, sep, attr = spec.partition(":")
        if not sep or not attr:
            msg = f"feed {name!r}: {spec!r} is not 'module:Class'"
            raise FeedPluginError(msg)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            msg = f"feed {name!r}: cannot import {module_name!r}: {exc!r}"
            raise FeedPluginError(msg) from exc
        obj: object = module
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            msg = f"feed {name!r}: {module_name!r} has no {attr!r}"
            raise FeedPluginError(msg) from exc
        if not (isinstance(obj, type) and issubclass(obj, FeedAdapter)):
            msg = f"feed {name!r}: {spec!r} is not a FeedAdapter subclass"
            raise FeedPluginError(msg)
        problems = check_class(obj)
        if getattr(obj, "name", None) != name:
            problems.append(f"class attribute name={getattr(obj, 'name', None)!r} differs from registry name")
        if getattr(obj, "__abstractmethods__", None):
            problems.append(f"abstract methods left: {sorted(obj.__abstractmethods__)}")
        if problems:
            raise FeedPluginError(f"feed {name!r} ({spec}): " + "; ".join(problems))
        self._loaded[name] = obj
        return obj

    def load_all(self) -> dict[str, type[FeedAdapter]]:
        """Import every registered feed now; the first broken one raises."""
        return {name: self.load(name) for name in self.names()}


_default: FeedRegistry | None = None


def default_registry() -> FeedRegistry:
    global _default
    if _default is None:
        _default = FeedRegistry()
    return _default


def load_feed(name: str) -> type[FeedAdapter]:
    return default_registry().load(name)
