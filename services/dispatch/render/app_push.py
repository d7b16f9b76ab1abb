"""Mobile-app push payload: a short title and body, plus data the app uses to open the
full warning (``cap_path`` → ``/cap/<message_id>.xml`` served by the console)."""

from __future__ import annotations

from typing import Literal, TypedDict

from schemas.warning import WarningMessage
from services.dispatch.render.cap import cap_certainty, cap_path
from services.dispatch.render.sms import SmsStyle, compose_sms
from services.dispatch.render.vocab import COLOUR_ZH, HAZARD_ZH, area_zh, cap_time
from services.dispatch.targeting import TownshipLookup


class PushData(TypedDict):
    message_id: str
    warning_id: str
    msg_type: str
    hazard: str
    level: str
    township_codes: list[str]
    cap_path: str
    sent: str
    onset: str
    certainty: str
    expires: str


class PushPayload(TypedDict):
    title: str
    body: str
    priority: Literal["high", "normal"]
    data: PushData


def render_push(msg: WarningMessage, towns: TownshipLookup) -> PushPayload:
    signal = f"{HAZARD_ZH[msg.hazard]}{COLOUR_ZH[msg.level]}预警"
    title = f"{'解除' if msg.msg_type == 'Cancel' else ''}{signal}·{area_zh(msg.township_codes, towns, 'city')}"
    body = compose_sms(msg, towns, SmsStyle(signature="")).text
    return {
        "title": title,
        "body": body,
        "priority": "high" if msg.level in ("orange", "red") and msg.msg_type != "Cancel" else "normal",
        "data": {
            "message_id": msg.message_id,
            "warning_id": msg.warning_id,
            "msg_type": msg.msg_type,
            "hazard": msg.hazard,
            "level": msg.level,
            "township_codes": list(msg.township_codes),
            "cap_path": cap_path(msg.message_id),
            "sent": cap_time(msg.sent_at),
            "onset": cap_time(msg.onset_at),
            "certainty": cap_certainty(msg),
            "expires": cap_time(msg.expires_at),
        },
    }
