"""Webhook signatures end to end, and Apprise per-URL results, on loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from services.dispatch.channels.apprise.channel import AppriseChannel
from services.dispatch.channels.apprise.config import AppriseConfig
from services.dispatch.channels.apprise.testing import json_targets
from services.dispatch.channels.base import PermanentChannelError
from services.dispatch.channels.webhook import WebhookChannel, WebhookConfig, sign, verify
from services.dispatch.channels.webhook.testing import WebhookInbox, create_webhook_receiver
from services.dispatch.gateways import create_receipt_sink, run_gateway
from services.dispatch.render import render_message
from tests.unit.dispatch.factories import TOWNS, chain, jobs_for

SECRET = "s3cret-for-tests"
RENDERED = render_message(chain(1)[0], TOWNS)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, WebhookInbox]]:
    app, inbox = create_webhook_receiver({"k1": SECRET, "k0": "old-key"})
    url, stop = await asyncio.to_thread(run_gateway, app)
    yield url, inbox
    await asyncio.to_thread(stop)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_signed_webhooks_verify_at_the_subscriber(receiver: tuple[str, WebhookInbox]) -> None:
    url, inbox = receiver
    config = WebhookConfig(
        subscribers={"city-ops": f"{url}/hooks/ops", "county-ouhai": f"{url}/hooks/ouhai", "gone": closed_port_url()},
        key_id="k1",
        secret=SecretStr(SECRET),
    )
    batch = jobs_for(RENDERED.message, "webhook", ["city-ops", "county-ouhai", "gone", "nobody"])
    async with WebhookChannel(config) as channel:
        results = await channel.send(batch, RENDERED)
    states = {r.target_id: (r.state, r.retryable) for r in results}
    assert states["city-ops"] == ("delivered", True)
    assert states["county-ouhai"] == ("delivered", True)
    assert states["gone"][0] == "failed"
    assert states["gone"][1]
    assert states["nobody"] == ("failed", False)
    received = inbox.snapshot()
    assert len(received) == 2
    assert all(item.verified for item in received)
    body = json.loads(received[0].body)
    assert body["message_id"] == RENDERED.message_id
    assert body["cap_identifier"] == RENDERED.cap_identifier
    assert body["cap_xml"].startswith("<?xml")


def test_tampering_fails_verification() -> None:
    body = b'{"message_id":"a.v1","level":"red"}'
    header = sign(body, "k1", SECRET)
    keys = {"k1": SECRET}
    assert verify(body, header, keys)
    assert not verify(body.replace(b"red", b"blue"), header, keys), "body changed"
    assert not verify(body, header.replace("kid=k1", "kid=k9"), keys), "unknown key id"
    assert not verify(body, header, {"k1": "another-secret"}), "wrong key"
    forged = header.rsplit("v1=", 1)[0] + "v1=" + "0" * 64
    assert not verify(body, forged, keys), "forged signature"
    old = sign(body, "k1", SECRET, timestamp=int(time.time()) - 3600)
    assert not verify(body, old, keys), "replayed an hour later"
    assert verify(body, old, keys, now=time.time() - 3600), "fresh at its own time"
    assert not verify(body, header.replace("hmac-sha256", "none"), keys), "algorithm downgrade"


async def test_a_subscriber_with_another_key_rejects_and_the_channel_reports_it(
    receiver: tuple[str, WebhookInbox],
) -> None:
    url, inbox = receiver
    config = WebhookConfig(subscribers={"ops": f"{url}/x"}, key_id="k1", secret=SecretStr("not-the-shared-one"))
    async with WebhookChannel(config) as channel:
        [result] = await channel.send(jobs_for(RENDERED.message, "webhook", ["ops"]), RENDERED)
    assert result.state == "failed"
    assert not result.retryable
    assert result.reason.startswith("http 401")
    [item] = inbox.snapshot()
    assert not item.verified
    assert item.error == "signature mismatch"


async def test_webhook_refuses_to_start_unsigned() -> None:
    with pytest.raises(PermanentChannelError):
        await WebhookChannel(WebhookConfig(subscribers={"a": "http://127.0.0.1:1"})).start()


@pytest.mark.filterwarnings("ignore:.imghdr. is deprecated:DeprecationWarning")
async def test_apprise_one_honest_result_per_url() -> None:
    sink_app, sink = create_receipt_sink()
    sink_url, stop = await asyncio.to_thread(run_gateway, sink_app)
    try:
        config = json_targets(sink_url, {"duty-city": "duty/city", "duty-ouhai": "duty/ouhai"})
        down = closed_port_url().replace("http://", "json://")
        targets = {**config.targets, "bad-url": SecretStr("definitely-not-a-url"), "down": SecretStr(down)}
        channel = AppriseChannel(AppriseConfig(targets=targets, timeout_s=5))
        batch = jobs_for(RENDERED.message, "apprise", ["duty-city", "duty-ouhai", "bad-url", "down", "unknown"])
        results = await channel.send(batch, RENDERED)
        assert await sink.wait_for_posts(2)
    finally:
        await asyncio.to_thread(stop)
    by_target = {r.target_id: r for r in results}
    assert [r.target_id for r in results] == [j.target_id for j in batch]
    assert by_target["duty-city"].state == by_target["duty-ouhai"].state == "submitted"  # never "delivered"
    assert by_target["bad-url"].state == "failed"
    assert not by_target["bad-url"].retryable
    assert by_target["down"].state == "failed"
    assert by_target["down"].retryable
    assert by_target["down"].reason.startswith("apprise failure")
    assert by_target["unknown"].reason == "unknown apprise target"
    posted = dict(sink.take())
    assert set(posted) == {"duty/city", "duty/ouhai"}
    assert posted["duty/city"]["title"] == RENDERED.chat_title
    assert RENDERED.message_id in posted["duty/city"]["message"]
