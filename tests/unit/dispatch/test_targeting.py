"""Targeting: synthetic terminals, lazy app tokens, the officials chain, jobs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import GeneratorType

import pytest

from services.dispatch.targeting import (
    COUNTY_NAMES_ZH,
    AudienceData,
    AudienceDataError,
    RegistryLookup,
    Targeting,
    TownshipInfo,
    load_audience_data,
)
from tests.unit.dispatch.factories import TOWNS, chain


def city(n_per_county: int = 16) -> dict[str, TownshipInfo]:
    """186 synthetic dissemination units over the 12 counties (codes are fake, shape is real)."""
    out: dict[str, TownshipInfo] = {}
    counties = list(COUNTY_NAMES_ZH)
    for i in range(186):
        county = counties[i % len(counties)]
        code = f"{county}{100 + i // len(counties):03d}"
        out[code] = TownshipInfo(code, f"镇{i}", county, COUNTY_NAMES_ZH[county], 30_000 + 997 * i)
    return out


def test_terminals_cover_95_percent_of_every_township_deterministically() -> None:
    towns = city()
    targeting = Targeting(towns, AudienceData(seed=3))
    for code in itertools.islice(towns, 40):
        cover = targeting.broadcast_coverage(code)
        assert 0.95 <= cover <= 1.0
        terminals = targeting.broadcast_terminals(code)
        assert len({t.terminal_id for t in terminals}) == len(terminals)
    again = Targeting(towns, AudienceData(seed=3))
    code = next(iter(towns))
    assert again.broadcast_terminals(code) == targeting.broadcast_terminals(code)
    assert Targeting(towns, AudienceData(seed=4)).broadcast_terminals(code) != targeting.broadcast_terminals(code)


def test_app_tokens_are_lazy_unique_and_counted() -> None:
    targeting = Targeting(TOWNS, AudienceData(app_subscribers={"330304108": 1000}))
    tokens = targeting.app_tokens("330304108")
    assert isinstance(tokens, GeneratorType)
    listed = list(tokens)
    assert len(listed) == len(set(listed)) == 1000
    assert targeting.app_subscriber_count("330324108") == round(38_000 * 0.25)


def test_officials_total_about_43000_and_chain_reaches_the_city() -> None:
    towns = city()
    targeting = Targeting(towns)
    total = targeting.officials_count(list(towns))
    assert 40_000 <= total <= 46_000
    one = next(targeting.officials_for(["330304108"]))
    assert one.level == "city"
    village = next(o for o in targeting.officials_for(["330304108"]) if o.level == "village")
    chain_up = [village]
    while (boss := targeting.superior_of(chain_up[-1].official_id)) is not None:
        chain_up.append(boss)
    assert [o.level for o in chain_up] == ["village", "township", "county", "city"]
    assert chain_up[1].township_code == "330304108"
    assert village.phone.isdigit()
    assert len(village.phone) == 11


def test_jobs_match_audience_size_and_are_lazy() -> None:
    targeting = Targeting(TOWNS, AudienceData(app_subscribers={"330304108": 300, "330304008": 200}))
    msg = chain(1, towns=("330304108", "330304008"))[0]
    for channel in ("sms", "broadcast", "app"):
        generated = targeting.jobs(msg, channel)
        assert isinstance(generated, GeneratorType)
        listed = list(generated)
        assert len(listed) == targeting.audience_size(msg, channel)
        assert len({j.delivery_key for j in listed}) == len(listed)
    sms_targets = [j.target_id for j in targeting.jobs(msg, "sms")]
    assert sms_targets[:2] == ["zone:330304108", "zone:330304008"]
    assert targeting.sms_address(sms_targets[-1]).isdigit()
    broadcast_pop = sum(j.population for j in targeting.jobs(msg, "broadcast"))
    assert broadcast_pop >= 0.95 * (45_000 + 62_000)


def test_registry_adapter_and_data_file(tmp_path: Path) -> None:
    class Registry:
        def township(self, code: str) -> TownshipInfo | None:
            return TOWNS.get(code)

    lookup = RegistryLookup(Registry())
    assert lookup["330304108"].county_name_zh == "瓯海区"
    assert lookup.get("999999999") is None

    good = tmp_path / "audience.json"
    good.write_text(json.dumps({"seed": 5, "app_subscribers": {"330304108": 10}}), encoding="utf-8")
    assert load_audience_data(good).seed == 5
    bad = tmp_path / "audience.toml"
    bad.write_text("app_subscriber_share = 2.0\n", encoding="utf-8")
    with pytest.raises(AudienceDataError, match=r"audience\.toml: key 'app_subscriber_share'"):
        load_audience_data(bad)
