"""Lazy channel registry: ``"name": "module:Class"`` plus the ``earlywarn.channels`` group.

A name resolves to a class only when asked for (``load``); nothing is imported to list
names (``names``). Built-ins are listed here *and* should be registered as entry points in
``pyproject.toml`` like any plug-in; an entry point that names a built-in with a different
target, a module that fails to import, a missing attribute, or a class that is not a
``Channel`` with sane capabilities raises ``ChannelPluginError`` naming the plug-in — a
broken plug-in is never skipped silently. Call ``load_all()`` at start-up to fail fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points

from services.dispatch.channels.base import Channel, check_class

ENTRY_POINT_GROUP = "earlywarn.channels"

BUILTIN_CHANNELS: dict[str, str] = {
    "sms": "services.dispatch.channels.sms.channel:SmsChannel",
    "broadcast": "services.dispatch.channels.broadcast.channel:BroadcastChannel",
    "app": "services.dispatch.channels.app.channel:AppPushChannel",
    "webhook": "services.dispatch.channels.webhook.channel:WebhookChannel",
    "apprise": "services.dispatch.channels.apprise.channel:AppriseChannel",
}


class ChannelPluginError(RuntimeError):
    """A channel plug-in is broken or conflicts with another; the message names it."""


def _group_entry_points(group: str) -> Iterable[EntryPoint]:
    return entry_points(group=group)


class ChannelRegistry:
    def __init__(
        self,
        builtins: Mapping[str, str] = BUILTIN_CHANNELS,
        group: str = ENTRY_POINT_GROUP,
        discover: Callable[[str], Iterable[EntryPoint]] = _group_entry_points,
    ) -> None:
        self._builtins = dict(builtins)
        self._group = group
        self._discover = discover
        self._specs: dict[str, str] | None = None
        self._loaded: dict[str, type[Channel]] = {}

    def specs(self) -> dict[str, str]:
        """name → ``module:Class`` (built-ins merged with entry points; nothing imported)."""
        if self._specs is None:
            specs = dict(self._builtins)
            for ep in self._discover(self._group):
                known = specs.get(ep.name)
                if known is not None and known != ep.value:
                    raise ChannelPluginError(
                        f"channel {ep.name!r}: entry point {ep.value!r} ({self._group}) conflicts with {known!r}"
                    )
                specs[ep.name] = ep.value
            self._specs = specs
        return dict(self._specs)

    def names(self) -> list[str]:
        return sorted(self.specs())

    def register(self, name: str, spec: str) -> None:
        """Add a channel at run time (tests, embedding); same rules as entry points."""
        specs = self.specs()
        if name in specs and specs[name] != spec:
            raise ChannelPluginError(f"channel {name!r} already registered as {specs[name]!r}")
        assert self._specs is not None
        self._specs[name] = spec

    def load(self, name: str) -> type[Channel]:
        if name in self._loaded:
            return self._loaded[name]
        specs = self.specs()
        if name not in specs:
            raise ChannelPluginError(f"no channel named {name!r} (known: {', '.join(sorted(specs))})")
        spec = specs[name]
        module_name, sep, attr = spec.partition(":")
        if not sep or not attr:
            raise ChannelPluginError(f"channel {name!r}: {spec!r} is not 'module:Class'")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ChannelPluginError(f"channel {name!r}: cannot import {module_name!r}: {exc!r}") from exc
        obj: object = module
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            raise ChannelPluginError(f"channel {name!r}: {module_name!r} has no {attr!r}") from exc
        if not (isinstance(obj, type) and issubclass(obj, Channel)):
            raise ChannelPluginError(f"channel {name!r}: {spec!r} is not a Channel subclass")
        problems = check_class(obj)
        if getattr(obj, "name", None) != name:
            problems.append(f"class attribute name={getattr(obj, 'name', None)!r} differs from registry name")
        if problems:
            raise ChannelPluginError(f"channel {name!r} ({spec}): " + "; ".join(problems))
        self._loaded[name] = obj
        return obj

    def load_all(self) -> dict[str, type[Channel]]:
        """Import every registered channel now; the first broken one raises."""
        return {name: self.load(name) for name in self.names()}


_default: ChannelRegistry | None = None


def default_registry() -> ChannelRegistry:
    global _default
    if _default is None:
        _default = ChannelRegistry()
    return _default


def load_channel(name: str) -> type[Channel]:
    return default_registry().load(name)
