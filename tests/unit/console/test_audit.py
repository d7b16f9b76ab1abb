"""The audit log is append-only and tamper-evident."""

from __future__ import annotations

import json
from pathlib import Path

from services.console.audit import AuditLog, verify_chain


def entry(log: AuditLog, n: int) -> None:
    log.append(actor=f"user{n}", role="duty_officer", action="cancel", outcome="published", target=f"w{n}", detail="x")


def test_appends_never_rewrite_earlier_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    entry(log, 1)
    first = path.read_bytes()
    entry(log, 2)
    entry(log, 3)
    assert path.read_bytes().startswith(first)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    assert verify_chain(path) == []


def test_a_restarted_log_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    entry(AuditLog(path), 1)
    entry(AuditLog(path), 2)
    assert [e["seq"] for e in AuditLog(path).tail()] == [2, 1]
    assert verify_chain(path) == []


def test_editing_or_deleting_a_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for n in range(4):
        entry(log, n)
    lines = path.read_text(encoding="utf-8").splitlines()
    edited = lines.copy()
    edited[1] = edited[1].replace('"outcome":"published"', '"outcome":"denied"')
    path.write_text("\n".join(edited) + "\n", encoding="utf-8")
    assert any("chain broken" in p for p in verify_chain(path))
    path.write_text("\n".join(lines[:1] + lines[2:]) + "\n", encoding="utf-8")
    assert verify_chain(path)


def test_tail_is_newest_first_and_filters_by_actor(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for n in range(5):
        entry(log, n % 2)
    assert [e["seq"] for e in log.tail(limit=3)] == [5, 4, 3]
    assert {e["actor"] for e in log.tail(actor="user1")} == {"user1"}
    assert len(log.tail(actor="user1")) == 2


def test_entries_say_who_when_what_and_the_outcome(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    written = log.append(
        actor="li.na",
        role="duty_officer",
        action="cancel",
        outcome="published",
        target="rainstorm-1",
        detail="river fell",
        command_id="c1",
        client="127.0.0.1",
    )
    assert {
        "seq",
        "at",
        "actor",
        "role",
        "action",
        "target",
        "outcome",
        "detail",
        "command_id",
        "client",
        "prev",
    } <= set(written)
    assert written["at"].endswith("Z")
