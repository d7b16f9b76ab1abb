"""The first channel: write each new warning message to the log/console, once.

Consumers see a message again after a redelivery; ``WarningDeduplicator`` drops any
``message_id`` already handled, so a warning is never announced twice.
"""

from __future__ import annotations

from collections import OrderedDict

from schemas.warning import WarningMessage


class WarningDeduplicator:
    """Remembers the last ``capacity`` message ids (ids are deterministic per episode)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.capacity = capacity
        self.repeats = 0

    def first_time(self, message_id: str) -> bool:
        if message_id in self._seen:
            self.repeats += 1
            return False
        self._seen[message_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


def format_warning(msg: WarningMessage) -> str:
    towns = ",".join(msg.township_codes)
    return (
        f"{msg.sent_at:%Y-%m-%d %H:%MZ} {msg.msg_type:<6} {msg.hazard}/{msg.level:<6} "
        f"{towns} {msg.message_id} | {msg.headline}"
    )
