"""Contract checks a channel plug-in's author runs in their own tests.

::

    from services.dispatch.channels.contract import check_channel_class, check_send

    def test_my_channel_class():
        assert check_channel_class(MyChannel) == []

    async def test_my_channel_sends(rendered, jobs):
        async with MyChannel(MyConfig(...)) as channel:
            assert await check_send(channel, jobs, rendered) == []

Each returns a list of problems (empty = conforms), so a failure names every breach at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.delivery import DeliveryJob
from services.dispatch.channels.base import Channel, check_class
from services.dispatch.render import RenderedMessage

VALID_STATES = frozenset({"submitted", "delivered", "failed"})


def check_channel_class(cls: type[Channel]) -> list[str]:
    """Capabilities declared as class attributes, readable without an instance."""
    problems = check_class(cls)
    if getattr(cls, "__abstractmethods__", None):
        problems.append(f"abstract methods left: {sorted(cls.__abstractmethods__)}")
    return problems


async def check_send(channel: Channel, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[str]:
    """One result per job, in order, with a valid state, a provider and reasons on failures."""
    problems = [f"check(): {v}" for v in channel.check(rendered)]
    results = await channel.send(batch, rendered)
    if [r.target_id for r in results] != [j.target_id for j in batch]:
        problems.append("send() must return one result per job, in batch order")
    for r in results:
        if r.state not in VALID_STATES:
            problems.append(f"{r.target_id}: state {r.state!r} is not submitted/delivered/failed")
        if not r.provider:
            problems.append(f"{r.target_id}: result without a provider")
        if r.state == "failed" and not r.reason:
            problems.append(f"{r.target_id}: failed without a reason")
        if r.state == "delivered" and channel.supports_receipts:
            problems.append(f"{r.target_id}: 'delivered' at send time on a channel that reports receipts later")
    return problems
