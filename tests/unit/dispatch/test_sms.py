"""SMS segment counting (exact, GSM-7 vs UCS-2) and template fallback."""

from __future__ import annotations

import pytest

from services.dispatch.render.sms import SmsStyle, SmsTooLong, compose_sms, count_segments, sms_encoding
from tests.unit.dispatch.factories import TOWNS, chain

ZH = "中"
EMOJI = "😀"  # outside the BMP: a UTF-16 surrogate pair


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        pytest.param("", "GSM-7", 0, 0, id="empty"),
        pytest.param("a" * 160, "GSM-7", 160, 1, id="gsm-160-single"),
        pytest.param("a" * 161, "GSM-7", 161, 2, id="gsm-161-two"),
        pytest.param("a" * 306, "GSM-7", 306, 2, id="gsm-306-two-full-parts"),
        pytest.param("a" * 307, "GSM-7", 307, 3, id="gsm-307-three"),
        pytest.param("€" * 80, "GSM-7", 160, 1, id="gsm-extension-costs-two"),
        pytest.param("€" * 81, "GSM-7", 162, 2, id="gsm-extension-overflow"),
        pytest.param("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3, id="gsm-escape-never-split"),
        pytest.param(ZH * 70, "UCS-2", 70, 1, id="ucs2-exactly-70"),
        pytest.param(ZH * 71, "UCS-2", 71, 2, id="ucs2-71-two"),
        pytest.param(ZH * 134, "UCS-2", 134, 2, id="ucs2-134-two-full-parts"),
        pytest.param(ZH * 135, "UCS-2", 135, 3, id="ucs2-135-three"),
        pytest.param("a" * 69 + ZH, "UCS-2", 70, 1, id="one-chinese-char-forces-ucs2"),
        pytest.param("a" * 150 + ZH, "UCS-2", 151, 3, id="latin-in-ucs2-counts-as-ucs2"),
        pytest.param(EMOJI * 35, "UCS-2", 70, 1, id="surrogates-70-units"),
        pytest.param(ZH * 66 + EMOJI + ZH * 66, "UCS-2", 134, 3, id="surrogate-pair-never-split"),
        pytest.param("Hello, world!", "GSM-7", 13, 1, id="plain-ascii"),
        pytest.param("garçon", "UCS-2", 6, 1, id="c-cedilla-lowercase-is-not-gsm"),
        # the signature is 8 characters (brackets included), so the body gets 62, not 63
        pytest.param("【温州市气象台】" + ZH * 62, "UCS-2", 70, 1, id="signature-plus-62"),
        pytest.param("【温州市气象台】" + ZH * 63, "UCS-2", 71, 2, id="signature-plus-63"),
    ],
)
def test_segment_count(text: str, encoding: str, units: int, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)
    assert (
        count.per_segment == ({"GSM-7": 160, "UCS-2": 70} if segments <= 1 else {"GSM-7": 153, "UCS-2": 67})[encoding]
    )


def test_encoding_detection() -> None:
    assert sms_encoding("ABC abc 123 @£$") == "GSM-7"
    assert sms_encoding("暴雨") == "UCS-2"


def test_single_township_red_warning_fits_one_segment_with_full_template() -> None:
    sms = compose_sms(chain(1)[0], TOWNS)
    assert sms.text.startswith("【温州市气象台】瓯海区泽雅镇暴雨红色预警：")
    assert sms.segments == 1
    assert sms.count.units <= 70
    assert sms.template == 1


def test_many_townships_fall_back_to_a_shorter_template_that_still_fits() -> None:
    towns = ("330304108", "330304008", "330304012", "330324108", "330324110", "330328225", "330382210")
    sms = compose_sms(chain(1, towns=towns)[0], TOWNS)
    assert sms.segments == 1
    assert sms.template > 1
    assert "暴雨红色预警" in sms.text


def test_update_and_cancel_wording() -> None:
    msgs = chain(3, levels=["yellow", "red", "red"], last="Cancel")
    assert "暴雨预警更新为红色" in compose_sms(msgs[1], TOWNS).text
    assert "解除瓯海区泽雅镇暴雨红色预警" in compose_sms(msgs[2], TOWNS).text


def test_too_long_for_the_channel_raises_with_the_count() -> None:
    style = SmsStyle(signature="【" + "很长的签名" * 30 + "】", max_segments=2)
    with pytest.raises(SmsTooLong) as info:
        compose_sms(chain(1)[0], TOWNS, style)
    assert info.value.segments > 2
    assert info.value.max_segments == 2


def test_reports_segments_when_one_is_impossible() -> None:
    style = SmsStyle(signature="【" + "签名" * 40 + "】")
    sms = compose_sms(chain(1)[0], TOWNS, style)
    assert sms.segments == 2
    assert sms.template == 1  # the richest text among the two-segment candidates
