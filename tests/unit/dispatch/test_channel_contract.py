"""Every built-in channel class and every testing fake passes the contract kit."""

from __future__ import annotations

import pytest

from services.dispatch.channels import BUILTIN_CHANNELS, ChannelRegistry
from services.dispatch.channels.app.testing import FakeAppPushChannel
from services.dispatch.channels.base import Channel
from services.dispatch.channels.broadcast.testing import FakeBroadcastChannel
from services.dispatch.channels.contract import check_channel_class, check_send
from services.dispatch.channels.sms.testing import FakeSmsChannel
from services.dispatch.render import render_message
from services.dispatch.targeting import Targeting
from tests.unit.dispatch.factories import TOWNS, chain

MSG = chain(1, towns=("330304108", "330324108"))[0]


@pytest.mark.parametrize("name", sorted(BUILTIN_CHANNELS))
def test_builtin_classes_conform(name: str) -> None:
    assert check_channel_class(ChannelRegistry(discover=lambda group: []).load(name)) == []


@pytest.mark.parametrize(
    ("channel", "route"),
    [
        pytest.param(FakeSmsChannel(fail_targets=["zone:330324108"]), "sms", id="sms"),
        pytest.param(FakeBroadcastChannel(), "broadcast", id="broadcast"),
        pytest.param(FakeAppPushChannel(), "app", id="app"),
    ],
)
async def test_fakes_honour_the_send_contract(channel: Channel, route: str) -> None:
    jobs = list(Targeting(TOWNS).jobs(MSG, route))[:700]
    assert await check_send(channel, jobs, render_message(MSG, TOWNS)) == []


def test_the_kit_catches_a_broken_class() -> None:
    class Broken(Channel):
        name = "broken"

    assert check_channel_class(Broken)  # type: ignore[type-abstract]
