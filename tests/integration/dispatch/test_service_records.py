"""The records dispatch writes: hand-built JSON equals the models' JSON, and the internal
``dispatch.work`` records round-trip (or are refused with a reason)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.delivery import DeliveryJob, DeliveryReceipt
from services.dispatch.processor import (
    CallbackWork,
    OutputEncoder,
    WarningWork,
    WorkDecodeError,
    decode_work,
    encode_callbacks,
    encode_warning,
    json_str,
    json_time,
    receipt_row,
)
from tests.integration.dispatch.test_service_support import CODES, warning

AT = datetime(2024, 7, 25, 6, 30, 1, 250_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("target_id", "provider", "reason", "at"),
    [
        pytest.param("tok_0123456789abcdef0123456789abcdef", "push", "", AT, id="app-token"),
        pytest.param("off:OFF-V-330304108-017-03", "sms-primary", "", AT.replace(microsecond=0), id="whole-second"),
        pytest.param('ebt:"quoted"\\back', "ebm", "amplifier fault", AT, id="escapes"),
        pytest.param("zone:330304108", "短信网关", "手机不在服务区\n重试", AT, id="non-ascii-and-newline"),
        pytest.param("t", "p" * 80, "r" * 400, AT, id="truncated-like-the-ledger"),
    ],
)
def test_receipt_json_is_what_the_model_writes(target_id: str, provider: str, reason: str, at: datetime) -> None:
    encoded = OutputEncoder().receipt(
        "rainstorm-330304108-x.v2",
        "rainstorm-330304108-x",
        "sms",
        target_id,
        "failed",
        json_time(at),
        provider,
        reason,
        3,
    )
    model = DeliveryReceipt(
        message_id="rainstorm-330304108-x.v2",
        warning_id="rainstorm-330304108-x",
        channel="sms",
        target_id=target_id,
        state="failed",
        at=at,
        provider=provider[:64],
        reason=reason[:300],
        attempt=3,
    )
    assert DeliveryReceipt.model_validate_json(encoded) == model
    assert encoded == model.model_dump_json().encode()


def test_job_json_is_what_the_model_writes() -> None:
    job = DeliveryJob(
        message_id="m.v1",
        warning_id="m",
        channel="app",
        target_id="tok_ab",
        township_code="330304108",
        population=7,
        created_at=AT,
    )
    encoded = OutputEncoder().job("m.v1", "m", "app", "tok_ab", "330304108", 7, json_time(AT))
    assert encoded == job.model_dump_json().encode()


@given(st.text(max_size=60))
def test_json_str_always_round_trips(text: str) -> None:
    assert json.loads(json_str(text)) == text


def test_work_records_round_trip_and_bad_ones_are_refused_with_a_reason() -> None:
    msg = warning(CODES[:2])
    work = decode_work(encode_warning(msg.model_dump_json().encode(), 1_721_889_000_123))
    assert isinstance(work, WarningWork)
    assert work.message == msg
    assert work.issued_ms == 1_721_889_000_123

    receipt = DeliveryReceipt(
        message_id=msg.message_id,
        warning_id=msg.warning_id,
        channel="sms",
        target_id=f"zone:{CODES[0]}",
        state="delivered",
        at=AT,
        provider="sms",
    )
    callbacks = decode_work(encode_callbacks("sms", [receipt_row(receipt)]))
    assert isinstance(callbacks, CallbackWork)
    assert callbacks.rows == [
        (msg.message_id, f"zone:{CODES[0]}", "delivered", "2024-07-25T06:30:01.250000Z", "sms", "")
    ]

    for bad, why in [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"kind":"dispatch.warning","warning":{"kind":"warning"}}', "warning:"),
        (b'{"kind":"dispatch.callbacks","channel":"sms","receipts":[[1,2]]}', "bad receipt row"),
        (b'{"kind":"dispatch.other"}', "unknown kind"),
    ]:
        with pytest.raises(WorkDecodeError, match=why):
            decode_work(bad)
