"""The audit log: one JSON line per operator action, appended, never rewritten.

Each entry says who (``actor``, ``role``), when (``at``, wall clock UTC: an audit trail
records when a person acted, not the event time of the storm), what (``action``,
``target``, ``detail``, ``command_id``) and the ``outcome``:

=============  =============================================================
``ok``         done (sign-in, sign-out, replay started)
``published``  the command is on the ``commands`` topic
``applied``    the lifecycle published the resulting warning message
``refused``    the lifecycle refused the command (its reason in ``detail``)
``denied``     the console refused it: role, two-person rule, bad password
``invalid``    the request was malformed (no reason for a cancel, …)
``error``      publishing failed
=============  =============================================================

Tamper evidence: every entry carries ``seq`` and ``prev`` (SHA-256 of the previous line),
so deleting or editing a line breaks the chain that ``verify_chain`` checks. Writes use
``O_APPEND`` and one ``write`` per line; the file is never opened for anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["ok", "published", "applied", "refused", "denied", "invalid", "error"]

GENESIS = "0" * 64


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(
        self, path: Path, now: Callable[[], datetime] = lambda: datetime.now(UTC), fsync: bool = False
    ) -> None:
        self.path = path
        self._now = now
        self._fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self._seq, self._prev = self._tail_state()

    def _tail_state(self) -> tuple[int, str]:
        """Continue the chain of an existing file (a restarted console appends to it)."""
        if not self.path.exists():
            return 0, GENESIS
        last: str | None = None
        with self.path.open("r", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    last = line.rstrip("\n")
        if last is None:
            return 0, GENESIS
        try:
            seq = int(json.loads(last)["seq"])
        except (ValueError, KeyError, TypeError):
            seq = 0
        return seq, _digest(last)

    def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        outcome: Outcome,
        target: str = "",
        detail: str = "",
        command_id: str | None = None,
        client: str = "",
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": self._seq + 1,
            "at": self._now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "actor": actor,
            "role": role,
            "action": action,
            "target": target,
            "outcome": outcome,
            "detail": detail[:1000],
            "command_id": command_id,
            "client": client,
            "prev": self._prev,
        }
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._seq += 1
        self._prev = _digest(line)
        return entry

    def tail(self, limit: int = 200, actor: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (optionally of one actor), newest first."""
        if not self.path.exists():
            return []
        keep: deque[dict[str, Any]] = deque(maxlen=max(1, limit))
        with self.path.open("r", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                entry = json.loads(line)
                if actor is None or entry.get("actor") == actor:
                    keep.append(entry)
        return list(reversed(keep))


def verify_chain(path: Path) -> list[str]:
    """Problems with the file's hash chain (empty: intact)."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    with path.open("r", encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\n")
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                problems.append(f"line {number}: not JSON")
                prev = _digest(line)
                continue
            if entry.get("prev") != prev:
                problems.append(f"line {number}: chain broken (an earlier line was changed or removed)")
            if entry.get("seq") != expected_seq:
                problems.append(f"line {number}: seq {entry.get('seq')} where {expected_seq} was expected")
            expected_seq = int(entry.get("seq", expected_seq)) + 1
            prev = _digest(line)
    return problems
