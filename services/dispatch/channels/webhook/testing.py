"""Test helpers: a signature-checking webhook receiver (an example subscriber)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from services.dispatch.channels.webhook.channel import SIGNATURE_HEADER, SignatureError, verify_or_raise


@dataclass
class ReceivedWebhook:
    body: bytes
    signature: str
    verified: bool
    error: str = ""


@dataclass
class WebhookInbox:
    received: list[ReceivedWebhook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[ReceivedWebhook]:
        with self.lock:
            return list(self.received)


def create_webhook_receiver(
    keys: Mapping[str, str | bytes | SecretStr], fail_status: int | None = None
) -> tuple[FastAPI, WebhookInbox]:
    """A subscriber that verifies each POST (401 when the signature fails).

    ``fail_status`` makes it answer that status to everything (to test failures).
    """
    inbox = WebhookInbox()
    app = FastAPI(title="earlywarn webhook receiver")

    @app.post("/{path:path}")
    async def receive(path: str, request: Request) -> Response:
        body = await request.body()
        header = request.headers.get(SIGNATURE_HEADER, "")
        try:
            verify_or_raise(body, header, keys)
            item = ReceivedWebhook(body, header, True)
        except SignatureError as exc:
            item = ReceivedWebhook(body, header, False, str(exc))
        with inbox.lock:
            inbox.received.append(item)
        if fail_status is not None:
            return Response(status_code=fail_status)
        return Response(status_code=204 if item.verified else 401)

    return app, inbox
