"""Logging follows the current ``sys.stderr``: a stream swapped in and closed leaves no trap."""

from __future__ import annotations

import io
import sys

import pytest

from services.common.logging import configure_logging, get_logger


def test_a_closed_stream_from_configure_time_does_not_break_later_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    configure_logging("info", "json")
    get_logger("test.logging").info("while swapped", n=1)
    assert '"event": "while swapped"' in swapped.getvalue()
    swapped.close()

    current = io.StringIO()
    monkeypatch.setattr(sys, "stderr", current)
    get_logger("test.logging").warning("after the swap", n=2)  # raised ValueError when bound at configure time
    assert '"event": "after the swap"' in current.getvalue()
    assert '"level": "warning"' in current.getvalue()
