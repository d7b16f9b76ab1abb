"""docs/integrators.md: the worked feed plug-in passes the contract kit and registers through
one entry-point line, exactly as the guide says."""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint

from schemas.observations import RainObservation
from services.ingest.contract_kit import check_adapter
from services.ingest.feeds import DecodeError, FeedRegistry
from tests.unit.ingest.guide_example import ENTRY_POINT, GUIDE, load_guide_module


def test_the_guides_example_honours_the_contract() -> None:
    module = load_guide_module()
    observations = check_adapter(module.TippingBucketFeed, samples=[module.SAMPLE_PAYLOAD], max_examples=150)
    assert isinstance(observations[0], RainObservation)
    assert observations[0].rain_mm == 2.6  # as the guide's own test asserts
    assert observations[0].observed_at.isoformat() == "2019-08-09T11:55:00+00:00"
    assert observations[0].interval_s == 300


def test_the_guides_example_reports_bad_lines_alone() -> None:
    feed = load_guide_module().TippingBucketFeed()
    items = list(
        feed.decode(b"#HYTB v2 bucket_mm=0.5 period_s=600\nTB-1 20190809T195500 tips=x\nTB-2 20190809T195500 tips=2\n")
    )
    assert isinstance(items[0], DecodeError)
    assert items[0].field == "tips"
    assert isinstance(items[1], RainObservation)
    assert items[1].rain_mm == 1.0
    [header_error] = feed.decode(b"no header\nTB-1 20190809T195500 tips=1\n")
    assert isinstance(header_error, DecodeError)
    assert header_error.fatal


def test_the_guides_entry_point_line_registers_it() -> None:
    load_guide_module()
    text = GUIDE.read_text(encoding="utf-8")
    line = re.search(r'^tipping_bucket = "([^"]+)"$', text, re.M)
    assert line is not None
    assert line.group(1) == ENTRY_POINT
    registry = FeedRegistry(
        discover=lambda group: [EntryPoint(name="tipping_bucket", value=line.group(1), group="earlywarn.feeds")]
    )
    assert registry.load("tipping_bucket").name == "tipping_bucket"
