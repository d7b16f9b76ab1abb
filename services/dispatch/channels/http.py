"""HTTP plumbing shared by the HTTP channels: request → per-target results on failure.

Mapping (what a failure means for the ledger):

==========================  ===========  =====================================
outcome                     retryable    reason
==========================  ===========  =====================================
connect error / refused     yes          ``connect: …``
timeout                     yes          ``timeout: …``
HTTP 429                    yes          ``throttled`` (+ Retry-After seconds)
HTTP 5xx                    yes          ``http 503: <body excerpt>``
HTTP 408                    yes          ``http 408``
other HTTP 4xx              no           ``http 4xx: <body excerpt>``
==========================  ===========  =====================================
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import SecretStr

from schemas.common import utc_now


@dataclass(frozen=True, slots=True)
class HttpFailure:
    reason: str
    retryable: bool
    retry_after_s: float | None = None


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utc_now()).total_seconds())


def classify_status(response: httpx.Response) -> HttpFailure | None:
    """None for 2xx; otherwise what the failure means."""
    code = response.status_code
    if 200 <= code < 300:
        return None
    excerpt = response.text[:120].replace("\n", " ") if response.content else ""
    if code == 429:
        return HttpFailure("throttled", True, retry_after_seconds(response.headers.get("retry-after")))
    if code >= 500 or code == 408:
        return HttpFailure(
            f"http {code}: {excerpt}".rstrip(": "), True, retry_after_seconds(response.headers.get("retry-after"))
        )
    return HttpFailure(f"http {code}: {excerpt}".rstrip(": "), False)


async def post_json(
    client: httpx.AsyncClient, url: str, payload: Any, headers: dict[str, str] | None = None
) -> httpx.Response | HttpFailure:
    """POST; transport errors come back as ``HttpFailure`` (never raised)."""
    try:
        return await client.post(url, json=payload, headers=headers)
    except httpx.TimeoutException as exc:
        return HttpFailure(f"timeout: {type(exc).__name__}", True)
    except httpx.ConnectError as exc:
        return HttpFailure(f"connect: {exc}"[:200], True)
    except httpx.TransportError as exc:
        return HttpFailure(f"transport: {type(exc).__name__}: {exc}"[:200], True)


async def post_bytes(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> httpx.Response | HttpFailure:
    try:
        return await client.post(url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        return HttpFailure(f"timeout: {type(exc).__name__}", True)
    except httpx.ConnectError as exc:
        return HttpFailure(f"connect: {exc}"[:200], True)
    except httpx.TransportError as exc:
        return HttpFailure(f"transport: {type(exc).__name__}: {exc}"[:200], True)


def failure_or_json(outcome: httpx.Response | HttpFailure) -> HttpFailure | dict[str, Any]:
    """Collapse a POST outcome to a failure or the decoded JSON object body."""
    if isinstance(outcome, HttpFailure):
        return outcome
    failure = classify_status(outcome)
    if failure is not None:
        return failure
    try:
        body = outcome.json()
    except ValueError:
        return HttpFailure("provider sent a non-JSON 2xx body", True)
    if not isinstance(body, dict):
        return HttpFailure("provider sent a JSON body that is not an object", True)
    return body


def bearer(secret: SecretStr) -> dict[str, str]:
    """``Authorization: Bearer …`` when a key is configured, else no header."""
    key = secret.get_secret_value()
    return {"authorization": f"Bearer {key}"} if key else {}
