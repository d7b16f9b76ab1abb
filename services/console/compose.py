"""The live check behind the compose form: text limits per channel and population reached.

``check_manual`` builds the message the lifecycle would issue for the form (an Alert,
``origin="manual"``), renders it with dispatch's renderers — the very texts channels would
send — and runs each channel's own ``check`` (SMS segments, text length per channel).
The headline and description as typed are counted too (encoding, UCS-2 70/67 segments).

If dispatch's renderer cannot be imported (a console deployed without it), the counts fall
back to ``count_segments_local`` (GSM-7 160/153, UCS-2 70/67, surrogate pairs cost 2) and
the per-channel rows report only what can be judged from the typed text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.command import ManualWarning
from schemas.warning import WarningMessage
from services.dispatch.targeting import TownshipInfo

Json = dict[str, Any]

GSM7_CHARS = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True, slots=True)
class Segments:
    encoding: str
    units: int
    segments: int
    per_segment: int

    def as_json(self, text: str) -> Json:
        return {
            "chars": len(text),
            "encoding": self.encoding,
            "units": self.units,
            "segments": self.segments,
            "per_segment": self.per_segment,
            "free_in_last": self.per_segment * self.segments - self.units,
        }


def count_segments_local(text: str) -> Segments:
    """The fallback counter (same rules as ``services.dispatch.render.sms``)."""
    gsm = all(ch in GSM7_CHARS or ch in GSM7_EXTENDED for ch in text)
    if gsm:
        costs = [2 if ch in GSM7_EXTENDED else 1 for ch in text]
        single, part, encoding = 160, 153, "GSM-7"
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, part, encoding = 70, 67, "UCS-2"
    units = sum(costs)
    if units == 0:
        return Segments(encoding, 0, 0, single)
    if units <= single:
        return Segments(encoding, units, 1, single)
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return Segments(encoding, units, segments, part)


def count_segments(text: str) -> Segments:
    try:
        from services.dispatch.render.sms import count_segments as dispatch_count
    except ImportError:
        return count_segments_local(text)
    found = dispatch_count(text)
    return Segments(found.encoding, found.units, found.segments, found.per_segment)


def preview_message(manual: ManualWarning, actor: str, now: datetime) -> WarningMessage:
    """The Alert the lifecycle would issue for this form (ids are placeholders)."""
    return WarningMessage(
        message_id="manual-preview.v1",
        warning_id="manual-preview",
        version=1,
        msg_type="Alert",
        hazard=manual.hazard,
        level=manual.level,
        township_codes=manual.township_codes,
        sent_at=now,
        onset_at=now,
        expires_at=now + timedelta(seconds=manual.valid_for_s),
        headline=manual.headline,
        reason=manual.description[:500],  # the lifecycle keeps the first 500 characters too
        origin="manual",
        issued_by=actor,
        approval="auto",
    )


ChannelTexts = Callable[[Any], list[str]]

_TEXTS: dict[str, ChannelTexts] = {
    "sms": lambda r: [r.sms.text],
    "broadcast": lambda r: [ebd["EBM"]["MsgContent"]["MsgDesc"] for ebd in r.broadcast.values()],
    "app": lambda r: [r.push["body"]],
    "apprise": lambda r: [r.chat_body],
    "webhook": lambda r: [r.cap_xml.decode("utf-8")],
}


def _chat_text(rendered: Any) -> list[str]:
    return [rendered.chat_body]


class ChannelChecker:
    """Dispatch's channel classes, instantiated once with default configs, for ``check``."""

    def __init__(self, channel_names: Sequence[str]) -> None:
        self.channel_names = tuple(channel_names)
        self._channels: dict[str, Any] | None = None

    def channels(self) -> dict[str, Any]:
        if self._channels is None:
            loaded: dict[str, Any] = {}
            try:
                from services.dispatch.channels.registry import default_registry
            except ImportError:
                self._channels = {}
                return self._channels
            registry = default_registry()
            for name in self.channel_names:
                try:
                    cls = registry.load(name)
                    loaded[name] = cls(cls.config_model())
                except Exception:  # a broken or unconfigurable plug-in: report it unchecked
                    loaded[name] = None
            self._channels = loaded
        return self._channels


def population_of(codes: Sequence[str], towns: Mapping[str, TownshipInfo]) -> tuple[int, list[str]]:
    unknown = [c for c in codes if c not in towns]
    return sum(towns[c].population for c in dict.fromkeys(codes) if c in towns), unknown


def check_manual(
    manual: ManualWarning, actor: str, now: datetime, towns: Mapping[str, TownshipInfo], checker: ChannelChecker
) -> Json:
    population, unknown = population_of(manual.township_codes, towns)
    result: Json = {
        "population": population,
        "townships": len(dict.fromkeys(manual.township_codes)),
        "unknown_townships": unknown,
        "headline": count_segments(manual.headline).as_json(manual.headline),
        "description": count_segments(manual.description).as_json(manual.description),
        "channels": [],
        "renderer": "local",
    }
    if unknown:
        return result
    try:
        from services.dispatch.render import render_message
    except ImportError:
        return result
    rendered = render_message(preview_message(manual, actor, now), towns)
    result["renderer"] = "dispatch"
    rows: list[Json] = []
    for name, channel in checker.channels().items():
        texts = _TEXTS.get(name, _chat_text)(rendered)
        longest = max(texts, key=len) if texts else ""
        row: Json = {
            "channel": name,
            "text": longest,
            "chars": len(longest),
            "limit": getattr(type(channel), "max_text_chars", None) if channel is not None else None,
            "violations": [],
            "ok": channel is not None,
        }
        if name == "sms":
            row["segments"] = rendered.sms.segments
            row["encoding"] = rendered.sms.count.encoding
            row["max_segments"] = getattr(getattr(channel, "config", None), "max_segments", None)
        if channel is not None:
            violations = channel.check(rendered)
            row["violations"] = [
                {"limit": v.limit, "allowed": v.allowed, "actual": v.actual, "detail": v.detail[:120]}
                for v in violations
            ]
            row["ok"] = not violations
        rows.append(row)
    result["channels"] = rows
    return result
