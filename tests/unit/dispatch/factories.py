"""Builders shared by the dispatch tests: a few real townships and warning chains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.assessment import Evidence
from schemas.common import Hazard, Level
from schemas.delivery import DeliveryJob
from schemas.warning import MessageRef, MsgType, WarningMessage
from services.dispatch.targeting import TownshipInfo

T0 = datetime(2024, 7, 25, 6, 30, tzinfo=UTC)  # 14:30 BJT

# Names from STANDARDS §5.3; populations are test values.
TOWNS: dict[str, TownshipInfo] = {
    t.code: t
    for t in (
        TownshipInfo("330304108", "泽雅镇", "330304", "瓯海区", 45_000),
        TownshipInfo("330304008", "瞿溪街道", "330304", "瓯海区", 62_000),
        TownshipInfo("330304012", "仙岩街道", "330304", "瓯海区", 80_000),
        TownshipInfo("330324108", "岩头镇", "330324", "永嘉县", 38_000),
        TownshipInfo("330324110", "岩坦镇", "330324", "永嘉县", 21_000),
        TownshipInfo("330328225", "桂山乡", "330328", "文成县", 6_000),
        TownshipInfo("330382210", "智仁乡", "330382", "乐清市", 9_000),
        TownshipInfo("330383000", "龙港市", "330383", "龙港市", 471_600),
    )
}


def chain(
    versions: int,
    *,
    hazard: Hazard = "rainstorm",
    levels: list[Level] | None = None,
    towns: tuple[str, ...] = ("330304108",),
    last: MsgType | None = None,
    gaps_s: list[int] | None = None,
    warning_id: str | None = None,
) -> list[WarningMessage]:
    """Versions 1..n of one warning: Alert, Updates, and ``last`` for the final one."""
    wid = warning_id or f"{hazard}-{towns[0]}-20240725T063000Z"
    out: list[WarningMessage] = []
    sent = T0
    for v in range(1, versions + 1):
        if v > 1:
            sent = sent + timedelta(seconds=(gaps_s[v - 2] if gaps_s else 600))
        level = (levels or ["red"])[(v - 1) % len(levels or ["red"])]
        msg_type: MsgType = "Alert" if v == 1 else (last if (v == versions and last) else "Update")
        out.append(
            WarningMessage(
                message_id=f"{wid}.v{v}",
                warning_id=wid,
                version=v,
                msg_type=msg_type,
                hazard=hazard,
                level=level,
                township_codes=towns,
                sent_at=sent,
                onset_at=sent,
                expires_at=sent + timedelta(hours=6),
                references=tuple(MessageRef(message_id=m.message_id, sent_at=m.sent_at) for m in out),
                headline=f"test {hazard} {level}",
                evidence=(Evidence(station_id="S58659", metric="rain_3h_mm", value=105.0, threshold=100.0),),
            )
        )
    return out


def jobs(msg: WarningMessage, channel: str, n: int, prefix: str = "t") -> list[DeliveryJob]:
    return [
        DeliveryJob(
            message_id=msg.message_id,
            warning_id=msg.warning_id,
            channel=channel,
            target_id=f"{prefix}{i}",
            township_code=msg.township_codes[0],
            population=1,
            created_at=msg.sent_at,
        )
        for i in range(n)
    ]


def jobs_for(msg: WarningMessage, channel: str, target_ids: list[str]) -> list[DeliveryJob]:
    """One job per named target (webhook subscribers, apprise targets …)."""
    return [
        DeliveryJob(
            message_id=msg.message_id,
            warning_id=msg.warning_id,
            channel=channel,
            target_id=target_id,
            township_code=msg.township_codes[0],
            created_at=msg.sent_at,
        )
        for target_id in target_ids
    ]
