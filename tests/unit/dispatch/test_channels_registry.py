"""Channel registry: lazy, entry-point aware, loud on broken plug-ins; capabilities as
class attributes."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Sequence
from importlib.metadata import EntryPoint

import pytest

from schemas.delivery import DeliveryJob
from services.dispatch.channels import BUILTIN_CHANNELS, Channel, ChannelPluginError, ChannelRegistry, TargetResult
from services.dispatch.channels.base import ChannelConfig
from services.dispatch.render import RenderedMessage


class EchoChannel(Channel):
    name = "echo"
    max_text_chars = 100
    encoding = "UTF-8"
    max_batch = 10
    rate_per_s = 0.0
    supports_receipts = False
    config_model = ChannelConfig

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        return [TargetResult(j.target_id, "delivered", "echo") for j in batch]


@pytest.fixture
def plugin_module() -> Iterator[str]:
    module = types.ModuleType("fake_plugin_mod")
    module.EchoChannel = EchoChannel  # type: ignore[attr-defined]
    module.NotAChannel = object  # type: ignore[attr-defined]
    sys.modules["fake_plugin_mod"] = module
    yield "fake_plugin_mod"
    del sys.modules["fake_plugin_mod"]


def eps(*pairs: tuple[str, str]) -> list[EntryPoint]:
    return [EntryPoint(name=n, value=v, group="earlywarn.channels") for n, v in pairs]


def test_builtins_load_and_declare_capabilities_without_instantiating() -> None:
    registry = ChannelRegistry(discover=lambda group: [])
    loaded = registry.load_all()
    assert set(loaded) == set(BUILTIN_CHANNELS)
    assert loaded["app"].max_batch == 500
    assert loaded["sms"].encoding == "GSM-7/UCS-2"
    assert loaded["sms"].supports_receipts
    assert not loaded["apprise"].supports_receipts
    for name, cls in loaded.items():
        assert cls.name == name


def test_entry_point_plugin_is_found_lazily(plugin_module: str) -> None:
    registry = ChannelRegistry(discover=lambda group: eps(("echo", f"{plugin_module}:EchoChannel")))
    assert "echo" in registry.names()
    assert registry.load("echo") is EchoChannel


def test_the_same_builtin_registered_as_entry_point_is_fine() -> None:
    registry = ChannelRegistry(discover=lambda group: eps(("sms", BUILTIN_CHANNELS["sms"])))
    assert registry.load("sms").name == "sms"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("no_such_module_xyz:Thing", "cannot import", id="import-error"),
        pytest.param("fake_plugin_mod:Missing", "has no 'Missing'", id="missing-attribute"),
        pytest.param("fake_plugin_mod:NotAChannel", "not a Channel subclass", id="not-a-channel"),
        pytest.param("fake_plugin_mod", "not 'module:Class'", id="no-colon"),
    ],
)
def test_broken_plugins_fail_loudly(plugin_module: str, value: str, message: str) -> None:
    registry = ChannelRegistry(discover=lambda group: eps(("broken", value)))
    with pytest.raises(ChannelPluginError, match=message):
        registry.load_all()


def test_conflicting_entry_point_fails_loudly(plugin_module: str) -> None:
    registry = ChannelRegistry(discover=lambda group: eps(("sms", f"{plugin_module}:EchoChannel")))
    with pytest.raises(ChannelPluginError, match="conflicts"):
        registry.names()


def test_name_mismatch_fails(plugin_module: str) -> None:
    registry = ChannelRegistry(discover=lambda group: eps(("other", f"{plugin_module}:EchoChannel")))
    with pytest.raises(ChannelPluginError, match="differs from registry name"):
        registry.load("other")
