"""Rendering: one ``WarningMessage`` → every channel's text, once per message.

``render_message`` builds a ``RenderedMessage`` holding the CAP XML, the SMS text (with its
segment count), one EBD per county platform, the app push payload and the chat/e-mail text.
Channels read only their part; none of them renders. Everything here is pure (no I/O), so a
re-delivered warning renders to identical bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from schemas.common import LEVEL_RANK
from schemas.warning import WarningMessage
from services.dispatch.render.app_push import PushPayload, render_push
from services.dispatch.render.broadcast import BroadcastStyle, Ebd, render_broadcast
from services.dispatch.render.cap import CapProfile, cap_identifier, cap_path, description_zh, headline_zh, render_cap
from services.dispatch.render.sms import SmsStyle, SmsText, compose_sms
from services.dispatch.render.vocab import INSTRUCTION_ZH
from services.dispatch.targeting import TownshipLookup


class RenderSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cap: CapProfile = CapProfile()
    sms: SmsStyle = SmsStyle()
    broadcast: BroadcastStyle = BroadcastStyle()


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    message: WarningMessage
    cap_identifier: str
    cap_xml: bytes
    cap_path: str
    sms: SmsText
    broadcast: dict[str, Ebd]
    """county code → EBD for that county's platform."""
    push: PushPayload
    chat_title: str
    chat_body: str

    @property
    def message_id(self) -> str:
        return self.message.message_id

    @property
    def warning_id(self) -> str:
        return self.message.warning_id

    @property
    def priority(self) -> int:
        """Queue priority: the level rank (red 4 … blue 1); higher is sent first."""
        return LEVEL_RANK[self.message.level]


def render_message(
    msg: WarningMessage, towns: TownshipLookup, settings: RenderSettings | None = None
) -> RenderedMessage:
    settings = settings or RenderSettings()
    headline = headline_zh(msg, towns, settings.cap)
    body = description_zh(msg, towns, settings.cap)
    if msg.msg_type != "Cancel":
        body += "\n" + INSTRUCTION_ZH[msg.hazard]
    return RenderedMessage(
        message=msg,
        cap_identifier=cap_identifier(msg, settings.cap),
        cap_xml=render_cap(msg, towns, settings.cap),
        cap_path=cap_path(msg.message_id),
        sms=compose_sms(msg, towns, settings.sms),
        broadcast=render_broadcast(msg, towns, settings.broadcast),
        push=render_push(msg, towns),
        chat_title=headline,
        chat_body=f"{body}\n({msg.message_id})",
    )


__all__ = ["RenderSettings", "RenderedMessage", "render_message"]
