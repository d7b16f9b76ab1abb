"""The channel contract: one small ABC every delivery channel is written against.

Lifecycle of a channel instance (the dispatcher drives it; the channel never calls back)::

    cls.max_batch, cls.rate_per_s, …        capabilities: class attributes, read before
          │                                 any instance exists (routing, planning)
    channel = cls(config)                   cheap; no I/O
    await channel.start()                   once, before the first send (open clients)
    channel.check(rendered)                 once per message, before any send of it
    await channel.send(batch, rendered)     many times; one result per target
    channel.parse_receipts(payload)         whenever the provider's callback arrives
    await channel.close()                   once, at shutdown

Results, not booleans: ``send`` returns one ``TargetResult`` per job, in the batch's
order, with ``submitted`` (the provider accepted it), ``delivered`` (the provider or
subscriber confirmed it synchronously) or ``failed`` (with a reason, and whether and when
to retry). A provider outage, a 429 or a refused connection is a *result* (every target
``failed``, ``retryable``), never an exception: the ledger decides what to do with it.

Exceptions from ``send`` mean the channel could not even try:

- ``TransientChannelError`` — nothing of the batch is known to be accepted; retry the
  whole batch after ``retry_after_s`` (e.g. the channel is closing).
- ``PermanentChannelError`` — the channel is misconfigured (no URL for a county, bad
  credentials): do not retry on this channel, fail over.
- anything else is a bug in the channel; the dispatcher treats the batch as transiently
  failed and logs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import utc_now
from schemas.delivery import DeliveryJob, DeliveryReceipt, DeliveryState
from services.dispatch.render import RenderedMessage

TargetState = Literal["submitted", "delivered", "failed"]
Encoding = Literal["GSM-7/UCS-2", "UCS-2", "UTF-8", "TTS"]


@dataclass(frozen=True, slots=True)
class TargetResult:
    """What happened to one target of one ``send``."""

    target_id: str
    state: TargetState
    provider: str
    provider_message_id: str = ""
    reason: str = ""
    retry_after_s: float | None = None
    """The provider's hint (Retry-After); None when it gave none."""
    retryable: bool = True
    """Only meaningful for ``failed``: False for permanent causes (invalid number/token)."""

    @classmethod
    def failed(
        cls, target_id: str, provider: str, reason: str, *, retryable: bool = True, retry_after_s: float | None = None
    ) -> Self:
        return cls(target_id, "failed", provider, "", reason, retry_after_s, retryable)


@dataclass(frozen=True, slots=True)
class LimitViolation:
    """A rendered message the channel cannot carry as-is (found by ``check``)."""

    limit: str
    allowed: float
    actual: float
    detail: str = ""


class ChannelError(Exception):
    """Base of the exceptions ``send`` may raise (see the module docstring)."""


class TransientChannelError(ChannelError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentChannelError(ChannelError):
    pass


class ChannelConfig(BaseModel):
    """Base of every channel's config: frozen, unknown keys rejected, defaults stated here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(default="", max_length=64, description="provider name in results and receipts")
    timeout_s: float = Field(default=10.0, gt=0)


class Channel(ABC):
    """A delivery channel. Subclasses set the class attributes and implement ``send``."""

    name: ClassVar[str]
    """Registry name (``sms``, ``broadcast`` …) and the ``channel`` of its jobs."""
    max_text_chars: ClassVar[int]
    """Longest text the channel carries (characters of its main text field)."""
    encoding: ClassVar[Encoding]
    max_batch: ClassVar[int]
    """Most targets the provider accepts in one request; ``send`` chunks larger batches."""
    rate_per_s: ClassVar[float]
    """Default sustained targets/s (configs may lower it); 0 means unlimited."""
    supports_receipts: ClassVar[bool]
    """True when delivery is confirmed later by callback (``parse_receipts``)."""
    config_model: ClassVar[type[ChannelConfig]]

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config

    @property
    def provider(self) -> str:
        return self.config.provider or self.name

    async def start(self) -> None:  # noqa: B027  (optional hook, default no-op)
        """Runs once before the first ``send``: open HTTP clients, warm caches.

        An exception here means the channel is unusable; the dispatcher does not route to it.
        """

    async def close(self) -> None:  # noqa: B027  (optional hook, default no-op)
        """Runs once at shutdown, after the last ``send`` returned. Must not raise."""

    def check(self, rendered: RenderedMessage) -> list[LimitViolation]:
        """Runs once per message before any ``send`` of it; pure, no I/O.

        Returns every limit the rendered message breaks (empty: sendable). A non-empty list
        means: do not send this message on this channel (re-render shorter or fail over).
        """
        return []

    @abstractmethod
    async def send(self, batch: Sequence[DeliveryJob], rendered: RenderedMessage) -> list[TargetResult]:
        """Runs for each batch of jobs of one message (any size; chunked by ``max_batch``).

        Returns exactly one ``TargetResult`` per job, in ``batch`` order. Provider errors are
        results; exceptions follow the module docstring.
        """

    def parse_receipts(self, payload: Mapping[str, Any]) -> list[DeliveryReceipt]:
        """Runs when the provider's delivery-report callback arrives (JSON ``payload``).

        Returns the receipts it carries. Unknown or malformed entries are skipped (the
        count of skipped entries is the caller's to log); never raises for bad input.
        """
        return []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def warning_id_of(message_id: str) -> str:
    """``<warning_id>.v<version>`` → ``<warning_id>``."""
    head, sep, _ = message_id.rpartition(".v")
    return head if sep else message_id


def make_receipt(
    message_id: str,
    channel: str,
    target_id: str,
    state: DeliveryState,
    at: datetime,
    provider: str = "",
    reason: str = "",
) -> DeliveryReceipt:
    return DeliveryReceipt(
        message_id=message_id,
        warning_id=warning_id_of(message_id),
        channel=channel,
        target_id=target_id,
        state=state,
        at=at,
        provider=provider[:64],
        reason=reason[:300],
    )


def provider_time(value: object) -> datetime:
    """A provider's ISO timestamp as an aware datetime; now (UTC) when absent or unusable."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return utc_now()
        if parsed.tzinfo is not None:
            return parsed
    return utc_now()


def check_class(cls: type[Channel]) -> list[str]:
    """Problems with a channel class's declared capabilities (the registry's sanity check)."""
    problems = []
    for attr, kind in (
        ("name", str),
        ("max_text_chars", int),
        ("encoding", str),
        ("max_batch", int),
        ("rate_per_s", (int, float)),
        ("supports_receipts", bool),
    ):
        value = getattr(cls, attr, None)
        if not isinstance(value, kind):
            problems.append(f"class attribute {attr!r} missing or not {kind}")
    if isinstance(getattr(cls, "max_batch", None), int) and cls.max_batch < 1:
        problems.append("max_batch must be >= 1")
    config_model = getattr(cls, "config_model", None)
    if not (isinstance(config_model, type) and issubclass(config_model, ChannelConfig)):
        problems.append("config_model must be a ChannelConfig subclass")
    return problems
