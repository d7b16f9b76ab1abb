"""Integrator keys: parsing errors name the key and the field; constant-time authentication;
scopes by station id or prefix reach the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.rejected import RejectedRecord
from services.ingest.feeds.testing import SAMPLE_NOW, canonical_rain, sample_lookup
from services.ingest.gate import IngestGate
from services.ingest.keys import (
    IntegratorKey,
    KeyFileError,
    KeyStore,
    StationMatcher,
    hash_secret,
    load_keys,
    main,
    new_key,
    parse_keys,
)

DIGEST = hash_secret("s3cret")

GOOD_TOML = f"""
[[keys]]
id = "wz-hydro"
integrator = "Wenzhou Hydrology Bureau"
secret_sha256 = "{DIGEST}"
stations = ["WL-*", "TIDE-WZ-01"]
feeds = ["water_level_csv", "canonical"]
kinds = ["water_level"]
rate_per_s = 5
burst = 20

[[keys]]
id = "qx"
integrator = "Meteorological bureau"
secret_sha256 = "{DIGEST}"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_and_json_files_load_the_same_keys(tmp_path: Path) -> None:
    from_toml = load_keys(write(tmp_path, "keys.toml", GOOD_TOML))
    document = {"keys": [k.model_dump(exclude_defaults=True) for k in from_toml]}
    from_json = load_keys(write(tmp_path, "keys.json", json.dumps(document)))
    assert from_toml == from_json
    hydro, qx = from_toml
    assert hydro.stations == ("WL-*", "TIDE-WZ-01")
    assert (hydro.rate_per_s, hydro.burst) == (5.0, 20)
    assert (qx.stations, qx.feeds, qx.kinds) == (None, None, None)
    assert (qx.rate_per_s, qx.burst) == (10.0, 20)  # the defaults stated in keys.py


def entry(**fields: object) -> dict[str, object]:
    return {"id": "wz-hydro", "integrator": "Hydrology", "secret_sha256": DIGEST, **fields}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param([entry(secret_sha256="abc")], "key 'wz-hydro' (entry 1): secret_sha256", id="bad-hash"),
        pytest.param([entry(rate_per_s=0)], "key 'wz-hydro' (entry 1): rate_per_s", id="zero-rate"),
        pytest.param([entry(burst=0)], "key 'wz-hydro' (entry 1): burst", id="zero-burst"),
        pytest.param([entry(kinds=["snow"])], "key 'wz-hydro' (entry 1): kinds.0", id="unknown-kind"),
        pytest.param([entry(stations=[])], "empty list allows nothing", id="empty-stations"),
        pytest.param([entry(stations=["*"])], "prefix ending in a single", id="star-only"),
        pytest.param([entry(stations=["RA*IN"])], "'RA*IN'", id="star-in-the-middle"),
        pytest.param([entry(colour="red")], "key 'wz-hydro' (entry 1): colour: Extra inputs", id="unknown-field"),
        pytest.param([entry(id="Has Spaces")], "key 'Has Spaces' (entry 1): id", id="bad-id"),
        pytest.param([entry(), {"integrator": "x", "secret_sha256": DIGEST}], "key entry 2 (no id): id", id="no-id"),
        pytest.param([entry(), entry()], "key 'wz-hydro' is defined twice (entries 1 and 2)", id="duplicate"),
        pytest.param(["wz-hydro"], "key entry 1 (no id): expected a table", id="not-a-table"),
    ],
)
def test_key_errors_name_the_key_and_the_field(entries: list[object], message: str) -> None:
    with pytest.raises(KeyFileError) as caught:
        parse_keys({"keys": entries}, "keys.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("keys.toml: ")


def test_file_level_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_keys(tmp_path / "missing.toml")
    with pytest.raises(KeyFileError, match="not valid TOML"):
        load_keys(write(tmp_path, "bad.toml", "[[keys]\nid="))
    with pytest.raises(KeyFileError, match="not valid JSON"):
        load_keys(write(tmp_path, "bad.json", "{"))
    with pytest.raises(KeyFileError, match="expected only 'keys'"):
        load_keys(write(tmp_path, "extra.json", '{"keys": [], "key": []}'))
    with pytest.raises(KeyFileError, match="expected a list of keys"):
        load_keys(write(tmp_path, "nolist.json", '{"keys": {}}'))


def test_unknown_feed_in_a_key_names_the_key() -> None:
    store = KeyStore(parse_keys({"keys": [entry(feeds=["rain_cvs"])]}))
    with pytest.raises(KeyFileError, match=r"key 'wz-hydro': feeds \['rain_cvs'\] are not registered"):
        store.check_feeds(["rain_csv", "canonical"])


def test_authenticate() -> None:
    api_key, digest = new_key("wz-hydro")
    store = KeyStore(
        [
            IntegratorKey(id="wz-hydro", integrator="h", secret_sha256=digest),
            IntegratorKey(id="off", integrator="o", secret_sha256=DIGEST, enabled=False),
        ]
    )
    key = store.authenticate(api_key)
    assert key is not None
    assert key.id == "wz-hydro"
    secret = api_key.split(".", 1)[1]
    for wrong in (
        None,
        "",
        "wz-hydro",
        f"wz-hydro.{secret}x",
        f"other.{secret}",
        secret,
        "off.s3cret",
        f"wz-hydro.{secret[:-1]}",
    ):
        assert store.authenticate(wrong) is None, wrong


def test_station_matcher_exact_and_prefix() -> None:
    matcher = StationMatcher.of(["WL-*", "TIDE-WZ-01"])
    assert "WL-OU-01" in matcher
    assert "TIDE-WZ-01" in matcher
    assert "TIDE-WZ-02" not in matcher
    assert "RAIN-A0001" not in matcher
    assert 42 not in matcher


def test_key_scope_is_enforced_by_the_gate() -> None:
    store = KeyStore(parse_keys({"keys": [entry(stations=["RAIN-A000*"], kinds=["rain"])]}))
    key = store.get("wz-hydro")
    assert key is not None
    gate = IngestGate(sample_lookup(), lambda: SAMPLE_NOW)
    scope = store.scope(key)
    inside = gate.admit(canonical_rain("RAIN-A0001", SAMPLE_NOW), "k", scope)
    by_prefix = gate.admit(canonical_rain("RAIN-A0009", SAMPLE_NOW), "k", scope)
    assert not isinstance(inside, RejectedRecord)
    assert not isinstance(by_prefix, RejectedRecord)
    narrow = KeyStore(parse_keys({"keys": [entry(stations=["RAIN-A0001"])]}))
    narrow_key = narrow.get("wz-hydro")
    assert narrow_key is not None
    refused = gate.admit(canonical_rain("RAIN-A0002", SAMPLE_NOW), "k", narrow.scope(narrow_key))
    assert isinstance(refused, RejectedRecord)
    assert (refused.reason, refused.field) == ("forbidden_station", "station_id")


def test_new_key_command_prints_a_loadable_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "wz-hydro", "Wenzhou", "Hydrology"]) == 0
    out = capsys.readouterr().out
    api_key = next(line.split(": ", 1)[1] for line in out.splitlines() if "X-API-Key" in line)
    toml = "\n".join(line for line in out.splitlines() if not line.startswith("#"))
    store = KeyStore.from_file(write(tmp_path, "keys.toml", toml))
    key = store.authenticate(api_key)
    assert key is not None
    assert key.integrator == "Wenzhou Hydrology"
    assert main(["old"]) == 2
