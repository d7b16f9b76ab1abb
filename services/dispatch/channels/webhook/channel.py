"""Signed JSON webhooks, and ``verify()`` for subscribers.

Signature scheme (HMAC-SHA256)
------------------------------
The venv has no ``cryptography`` package, so Ed25519 is not available; webhooks are signed
with HMAC-SHA256 over a shared secret per key id. Each POST carries::

    X-Earlywarn-Signature: t=1721889000,kid=k1,alg=hmac-sha256,v1=<64 hex>

    v1 = HMAC_SHA256(secret[kid], f"{t}." + raw_body)

1. The subscriber looks up ``kid`` (so keys can be rotated: accept old and new for a while).
2. It recomputes ``v1`` over the **raw** body bytes and compares in constant time.
3. It rejects ``t`` outside ± ``tolerance_s`` (default 300 s) to stop replays.

``verify(body, header, keys)`` does all three. The body is the same canonical JSON for every
subscriber of a send (sorted keys, UTF-8), so one signature serves the whole batch.

Results: a 2xx answer is ``delivered`` (the subscriber's server has the message — that *is*
the delivery for this channel); 408/429/5xx/transport errors are retryable failures; other
4xx are permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from schemas.delivery import DeliveryJob
from services.dispatch.channels.base import (
    Channel,
    Encoding,
    LimitViolation,
    PermanentChannelError,
    TargetResult,
)
from services.dispatch.channels.http import HttpFailure, classify_status, post_bytes
from services.dispatch.channels.webhook.config import WebhookConfig
from services.dispatch.render import RenderedMessage

SIGNATURE_HEADER = "X-Earlywarn-Signature"
ALGORITHM = "hmac-sha256"


class SignatureError(ValueError):
    """Why a webhook signature was rejected."""


def _key_bytes(key: str | bytes | SecretStr) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    return key.encode() if isinstance(key, str) else key


def sign(body: bytes, key_id: str, secret: str | bytes | SecretStr, timestamp: int | None = None) -> str:
    """The ``X-Earlywarn-Signature`` header value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(_key_bytes(secret), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},kid={key_id},alg={ALGORITHM},v1={mac}"


def verify_or_raise(
    body: bytes,
    header: str,
    keys: Mapping[str, str | bytes | SecretStr],
    *,
    now: float | None = None,
    tolerance_s: float = 300.0,
) -> str:
    """Check a signature; return the key id that verified it, or raise ``SignatureError``."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name] = value
    if fields.get("alg") != ALGORITHM:
        raise SignatureError(f"unsupported algorithm {fields.get('alg')!r}")
    kid, given, t_text = fields.get("kid", ""), fields.get("v1", ""), fields.get("t", "")
    if kid not in keys:
        raise SignatureError(f"unknown key id {kid!r}")
    try:
        t = int(t_text)
    except ValueError as exc:
        raise SignatureError("missing or bad timestamp") from exc
    current = time.time() if now is None else now
    if abs(current - t) > tolerance_s:
        raise SignatureError(f"timestamp {t} outside ±{tolerance_s:.0f} s")
    expected = hmac.new(_key_bytes(keys[kid]), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise SignatureError("signature mismatch")
    return kid


def verify(
    body: bytes,
    header: str,
    keys: Mapping[str, str | bytes | SecretStr],
    *,
    now: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """True when ``header`` is a valid, fresh signature of ``body`` by one of ``keys``."""
    try:
        verify_or_raise(body, header, keys, now=now, tolerance_s=tolerance_s)
    except SignatureError:
        return False
    return True


def webhook_body(rendered: RenderedMessage, include_cap_xml: bool = True) -> bytes:
    """The canonical JSON body (same bytes for every subscriber of a message)."""
    msg = rendered.message
    doc: dict[str, Any] = {
        "kind": "earlywarn.warning",
        "message_id": msg.message_id,
        "warning_id": msg.warning_id,
        "msg_type": msg.msg_type,
        "hazard": msg.hazard,
        "level": msg.level,
        "township_codes": list(msg.township_codes),
        "cap_identifier": rendered.cap_identifier,
        "cap_path": rendered.cap_path,
        "headline": rendered.chat_title,
        "message": msg.model_dump(mode="json"),
    }
    if include_cap_xml:
        doc["cap_xml"] = rendered.cap_xml.decode("utf-8")
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


class WebhookChannel(Channel):
    name: ClassVar[str] = "webhook"
    max_text_chars: ClassVar[int] = 256 * 1024
    encoding: ClassVar[Encoding] = "UTF-8"
    max_batch: ClassVar[int] = 1000
    rate_per_s: ClassVar[float] = 0.0
    supports_receipts: ClassVar[bool] = False
    config_model: ClassVar[type[WebhookConfig]] = WebhookConfig

    config: WebhookConfig

    def __init__(self, config: WebhookConfig | None = None, *, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config or WebhookConfig())
        self._client = client
        self._owns_client = client is None
        self._slots = asyncio.Semaphore(self.config.concurrency)

    async def start(self) -> None:
        if not self.config.secret.get_secret_value():
            raise PermanentChannelError("webhook secret is empty: refusing to send unsigned webhooks")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout_s)

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def check(self, rendered: RenderedMessage) -> list[LimitViolation]:
        size = len(webhook_body(rendered, self.config.include_cap_xml))
        limit = min(self.config.max_body_bytes, self.max_text_chars)
        return [LimitViolation("max_body_bytes", limit, size)] if size > limit else []

    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        if self._client is None:
            await self.start()
        body = webhook_body(rendered, self.config.include_cap_xml)
        headers = {
            "content-type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: sign(body, self.config.key_id, self.config.secret),
            "X-Earlywarn-Message-Id": rendered.message_id,
        }
        return list(await asyncio.gather(*(self._post(job, body, headers) for job in batch)))

    async def _post(self, job: DeliveryJob, body: bytes, headers: dict[str, str]) -> TargetResult:
        assert self._client is not None
        url = self.config.subscribers.get(job.target_id)
        if url is None:
            return TargetResult.failed(job.target_id, self.provider, "unknown subscriber", retryable=False)
        async with self._slots:
            outcome = await post_bytes(self._client, url, body, headers)
        failure = outcome if isinstance(outcome, HttpFailure) else classify_status(outcome)
        if failure is not None:
            return TargetResult.failed(
                job.target_id,
                self.provider,
                failure.reason,
                retryable=failure.retryable,
                retry_after_s=failure.retry_after_s,
            )
        return TargetResult(job.target_id, "delivered", self.provider)
