"""The scenario file format: shipped files load, bad files fail with the key named, lookup by name."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from services.ingest.simulate.scenario import (
    SCENARIOS_ENV,
    ConvectiveCell,
    Scenario,
    ScenarioError,
    TrackPoint,
    TyphoonConfig,
    find_scenario,
    load_scenario,
    parse_scenario,
    scenario_files,
    scenario_from_dict,
    shipped_scenarios_dir,
)
from tests.unit.simulate.support import SCENARIOS_DIR, SHIPPED, START, TYPHOONS, minimal

DOMAIN_TRACKS = Path("/work/shared/domain/typhoon_tracks_wenzhou_cma_all_records.csv")
STORM_IDS = {"saomai-2006": "0608", "lekima-2019": "1909", "hagupit-2020": "2004"}

TRACK = [
    {"time": START, "lat": 26.0, "lon": 123.0, "vmax_ms": 40.0, "mslp_hpa": 960.0},
    {"time": START + timedelta(hours=3), "lat": 27.0, "lon": 122.0, "vmax_ms": 45.0, "mslp_hpa": 950.0},
]
CELL = {"start": START, "lon": 120.6, "lat": 28.0, "peak_dbz": 50.0}


def full() -> dict[str, Any]:
    """A minimal scenario that also has a typhoon and a cell, so every key has a place."""
    return minimal(typhoon={"name": "T", "track": [dict(p) for p in TRACK]}, cells=[dict(CELL)])


def problems(raw: dict[str, Any]) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, source="bad.toml")
    return caught.value


# --------------------------------------------------------------------------- shipped files


def test_the_shipped_scenarios_are_the_five_documented_ones() -> None:
    assert tuple(f.stem for f in scenario_files(SCENARIOS_DIR)) == SHIPPED


@pytest.mark.parametrize("path", scenario_files(SCENARIOS_DIR), ids=lambda p: p.stem)
def test_every_shipped_scenario_loads(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.name == path.stem
    assert sc.format_version == 1
    assert sc.end > sc.start
    assert (sc.typhoon is not None) == (sc.name in TYPHOONS)
    if sc.typhoon is not None:  # the storm is on the map for the whole span
        assert sc.typhoon.track[0].time <= sc.start
        assert sc.typhoon.track[-1].time >= sc.end
    if sc.name == "convective-afternoon":
        assert len(sc.cells) == 7


@pytest.mark.skipif(not DOMAIN_TRACKS.is_file(), reason="shared domain data not on this machine")
@pytest.mark.parametrize("name", TYPHOONS)
def test_shipped_tracks_are_cma_best_track_records_unchanged(name: str) -> None:
    with DOMAIN_TRACKS.open(newline="", encoding="utf-8") as handle:
        rows = {r["time_utc"]: r for r in csv.DictReader(handle) if r["storm_id"] == STORM_IDS[name]}
    track = load_scenario(SCENARIOS_DIR / f"{name}.toml").typhoon
    assert track is not None
    times = [p.time.strftime("%Y-%m-%dT%H:%M:%SZ") for p in track.track]
    # every record inside the track's span is used, none is invented
    assert times == sorted(t for t in rows if times[0] <= t <= times[-1])
    for point, when in zip(track.track, times, strict=True):
        row = rows[when]
        expected = (float(row["lat"]), float(row["lon"]), float(row["vmax_ms"]), float(row["mslp_hpa"]))
        assert (point.lat, point.lon, point.vmax_ms, point.mslp_hpa) == expected


def test_minimal_scenario_gets_every_default() -> None:
    sc = scenario_from_dict(minimal())
    assert sc.typhoon is None
    assert sc.cells == ()
    assert sc.faults.dropout_rate == 0.0
    assert sc.stations.sample_fraction == 1.0
    assert set(sc.hydrology.rivers) == {"Ou", "Feiyun", "Ao", "Wen-Rui canal"}


def test_a_river_override_merges_with_the_river_defaults() -> None:
    sc = scenario_from_dict(minimal(hydrology={"rivers": {"Ou": {"reservoir_k_h": 3.0}, "Nanxi": {}}}))
    assert sc.hydrology.river("Ou").reservoir_k_h == 3.0
    assert sc.hydrology.river("Ou").basin_radius_km == 25.0  # kept from the default Ou
    assert sc.hydrology.river("Nanxi") == sc.hydrology.rivers["Nanxi"]
    assert sc.hydrology.river("nowhere") == sc.hydrology.default_river


# --------------------------------------------------------------------------- clear errors


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"format_version": None}, "format_version", "required"),
        ({"format_version": 2}, "format_version", "unsupported"),
        ({"format_version": "1"}, "format_version", "unsupported"),
        ({"format_version": True}, "format_version", "unsupported"),
        ({"name": None}, "name", "required"),
        ({"name": "Has Spaces"}, "name", "pattern"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"faults": {"dropout": 0.1}}, "faults.dropout", "unknown key"),
        ({"faults": {"dropout_rate": 1.5}}, "faults.dropout_rate", "less than or equal to 1"),
        ({"faults": {"dropout_rate": True}}, "faults.dropout_rate", "expected a number"),
        ({"faults": {"dropout_rate": "0.1"}}, "faults.dropout_rate", "expected a number"),
        ({"faults": {"dropout_rate": math.nan}}, "faults.dropout_rate", "finite"),
        ({"radar": {"zr_a": math.inf}}, "radar.zr_a", "finite"),
        ({"seed": True}, "seed", "expected a number"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"end": START}, "end", "after start"),
        ({"end": START + timedelta(days=15)}, "end", "14 days"),
        ({"start": START + timedelta(seconds=30)}, "start", "whole minute"),
        ({"end": START + timedelta(minutes=61, seconds=1)}, "end", "whole minute"),
        ({"start": START.replace(tzinfo=None)}, "start", "time zone"),
        ({"stations": {"rain_aws_interval_s": 90}}, "stations.rain_aws_interval_s", "whole minutes"),
        ({"stations": {"include_kinds": ["rain", "lightning"]}}, "stations.include_kinds[1]", "'rain'"),
        ({"faults": {"late_delay": {"mean_s": 10.0}}}, "faults.late_delay", "min_s <= mean_s"),
        ({"faults": {"late_delay": {"distribution": "cauchy"}}}, "faults.late_delay.distribution", "'uniform'"),
        ({"geohazard": {"lead_time_h": [8.0, 3.0]}}, "geohazard.lead_time_h", "min <= max"),
        ({"geohazard": {"trigger_level": "purple"}}, "geohazard.trigger_level", "'orange'"),
        ({"background": {"start": START + timedelta(hours=1), "end": START}}, "background", "after its start"),
        ({"hydrology": {"rivers": {"Ou": {"reservoir_k_h": 0}}}}, "hydrology.rivers.Ou.reservoir_k_h", "greater"),
        ({"replay": {"speed": "fast"}}, "replay.speed", "'max'"),
        ({"replay": {"speed": 0}}, "replay.speed", "positive"),
        ({"typhoon": {"name": "T"}}, "typhoon.track", "at least 2 points"),
        ({"typhoon": {"name": "T", "track": [TRACK[1], TRACK[0]]}}, "typhoon.track", "increase strictly"),
        ({"typhoon": {"name": "T", "track": TRACK, "gust_factor": [1.6, 1.4]}}, "typhoon.gust_factor", "min"),
        (
            {"typhoon": {"name": "T", "track": [TRACK[0], {**TRACK[1], "vmax_ms": 120}]}},
            "typhoon.track[1].vmax_ms",
            "less than or equal to 100",
        ),
        ({"cells": [{**CELL, "peak_rain_mm_h": 50.0}]}, "cells[0]", "exactly one of peak_dbz or peak_rain_mm_h"),
        ({"cells": [{k: v for k, v in CELL.items() if k != "start"}]}, "cells[0].start", "required"),
    ],
)
def test_invalid_values_name_the_key(change: dict[str, Any], key: str, words: str) -> None:
    raw = minimal()
    for name, value in change.items():
        if value is None:
            raw.pop(name)
        else:
            raw[name] = value
    error = problems(raw)
    assert key in error.keys, error
    reason = dict(error.problems)[key]
    assert words in reason, reason
    assert str(error).startswith(f"bad.toml: {error.problems[0][0]}: ")


def test_every_problem_is_reported_at_once() -> None:
    error = problems(minimal(seed=-1, faults={"late_rate": 2.0}, noise={"wind_sigma": -1.0}))
    assert set(error.keys) == {"seed", "faults.late_rate", "noise.wind_sigma"}


def test_toml_syntax_errors_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario("format_version = 1\nname = ", source="broken.toml")
    assert caught.value.keys == ["(syntax)"]
    assert "not valid TOML" in str(caught.value)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "absent.toml")
    assert caught.value.keys == ["(file)"]
    assert "absent.toml" in str(caught.value)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('format_version = 1\nname = "x"\n', encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.source == str(path)
    assert set(caught.value.keys) == {"description", "seed", "start", "end"}
    assert all(line.startswith(f"{path}: ") for line in str(caught.value).splitlines())


# --------------------------------------------------------------------------- hypothesis: out-of-range values


@dataclass(frozen=True)
class Bounded:
    path: tuple[str | int, ...]
    lower: tuple[float, bool] | None  # (bound, inclusive)
    upper: tuple[float, bool] | None
    integer: bool

    @property
    def key(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


def _limits(field: FieldInfo) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
    lower = upper = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            lower = (float(item.ge), True)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Gt):
            lower = (float(item.gt), False)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Le):
            upper = (float(item.le), True)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Lt):
            upper = (float(item.lt), False)  # type: ignore[arg-type]
    return lower, upper


def _bounded(model: type[BaseModel], prefix: tuple[str | int, ...]) -> Iterator[Bounded]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _bounded(annotation, (*prefix, name))
            continue
        lower, upper = _limits(field)
        if lower is not None or upper is not None:
            yield Bounded((*prefix, name), lower, upper, integer=annotation is int)


def _all_bounded() -> list[Bounded]:
    found: list[Bounded] = []
    for name, field in Scenario.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _bounded(annotation, (name,))
        else:
            lower, upper = _limits(field)
            if lower is not None or upper is not None:
                found.append(Bounded((name,), lower, upper, integer=annotation is int))
    found += _bounded(TyphoonConfig, ("typhoon",))
    found += _bounded(TrackPoint, ("typhoon", "track", 1))
    found += _bounded(ConvectiveCell, ("cells", 0))
    return found


BOUNDED = _all_bounded()


def _set(raw: dict[str, Any], path: tuple[str | int, ...], value: object) -> None:
    node: Any = raw
    for part in path[:-1]:
        if isinstance(part, str) and part not in node:
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


@st.composite
def out_of_range(draw: st.DrawFn) -> tuple[Bounded, object]:
    field = draw(st.sampled_from(BOUNDED), label="field")
    sides = [side for side in ("lower", "upper") if getattr(field, side) is not None]
    side = draw(st.sampled_from(sides), label="side")
    bound, inclusive = getattr(field, side)
    sign = -1.0 if side == "lower" else 1.0
    if field.integer:
        step = draw(st.integers(min_value=1 if inclusive else 0, max_value=10**6))
        return field, int(bound) + int(sign) * step
    smallest = 1e-3 if inclusive else 0.0
    delta = draw(st.floats(min_value=smallest, max_value=1e6, allow_nan=False, allow_infinity=False))
    return field, bound + sign * max(delta, abs(bound) * 1e-9 if inclusive else 0.0)


def test_the_bounded_keys_cover_every_section() -> None:
    sections = {b.path[0] for b in BOUNDED}
    assert {"seed", "typhoon", "cells", "background", "tide", "surge", "hydrology", "geohazard"} <= sections
    assert {"faults", "noise", "radar", "grid", "stations", "truth"} <= sections
    assert len(BOUNDED) > 90


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=out_of_range())
def test_any_out_of_range_value_is_refused_naming_its_key(bad: tuple[Bounded, object]) -> None:
    field, value = bad
    raw = full()
    _set(raw, field.path, value)
    error = problems(raw)
    assert field.key in error.keys, (value, error)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(BOUNDED),
    value=st.one_of(st.booleans(), st.text(max_size=5), st.just(math.inf), st.just(-math.inf), st.just(math.nan)),
)
def test_any_non_number_is_refused_naming_its_key(field: Bounded, value: object) -> None:
    if field.integer and isinstance(value, float):
        value = str(value)  # an int key given a float fails for a different reason: keep it a type error
    raw = full()
    _set(raw, field.path, value)
    error = problems(raw)
    assert field.key in error.keys, (value, error)


# --------------------------------------------------------------------------- best_track references

BEST_TRACK_CSV = """storm_name,storm_id,agency,time_utc,lat,lon,vmax_ms,vmax_averaging,mslp_hpa
Lekima,1909,CMA,2019-08-09T12:00:00Z,27.5,122.0,48,2-min,940
Lekima,1909,CMA,2019-08-09T15:00:00Z,27.9,121.7,50,2-min,935
Lekima,1909,CMA,2019-08-09T18:00:00Z,28.3,121.4,52,2-min,930
Other,2004,CMA,2020-08-03T00:00:00Z,25.0,123.4,30,2-min,985
"""

BEST_TRACK_SCENARIO = """format_version = 1
name = "from-csv"
description = "track read from a CSV"
seed = 1
start = 2019-08-09T12:00:00Z
end = 2019-08-09T15:00:00Z

[typhoon]
name = "Lekima"
best_track = {{ storm_id = "{storm}", file = "{file}" }}
"""


def _best_track_file(tmp_path: Path, storm: str = "1909", file: str = "tracks.csv") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "tracks.csv").write_text(BEST_TRACK_CSV, encoding="utf-8")
    path = tmp_path / "from-csv.toml"
    path.write_text(BEST_TRACK_SCENARIO.format(storm=storm, file=file), encoding="utf-8")
    return path


def test_best_track_resolves_against_the_data_dir(tmp_path: Path) -> None:
    sc = load_scenario(_best_track_file(tmp_path))
    assert sc.typhoon is not None
    assert [(p.lat, p.lon, p.vmax_ms, p.mslp_hpa) for p in sc.typhoon.track] == [
        (27.5, 122.0, 48.0, 940.0),
        (27.9, 121.7, 50.0, 935.0),
        (28.3, 121.4, 52.0, 930.0),
    ]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "tracks.csv").write_text(BEST_TRACK_CSV.replace("27.5", "27.4"), encoding="utf-8")
    again = load_scenario(tmp_path / "from-csv.toml", data_dir=elsewhere)
    assert again.typhoon is not None
    assert again.typhoon.track[0].lat == 27.4


@pytest.mark.parametrize(
    ("storm", "file", "key"),
    [
        ("1808", "tracks.csv", "typhoon.best_track.storm_id"),
        ("1909", "missing.csv", "typhoon.best_track.file"),
    ],
)
def test_bad_best_track_references_name_the_key(tmp_path: Path, storm: str, file: str, key: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(_best_track_file(tmp_path, storm, file))
    assert caught.value.keys == [key]


def test_best_track_and_track_together_are_refused() -> None:
    raw = minimal(typhoon={"name": "T", "track": TRACK, "best_track": {"storm_id": "1909", "file": "x.csv"}})
    assert problems(raw).keys == ["typhoon.best_track"]


def test_best_track_without_a_data_dir_is_refused() -> None:
    raw = minimal(typhoon={"name": "T", "best_track": {"storm_id": "1909", "file": "x.csv"}})
    assert problems(raw).keys == ["typhoon.best_track.file"]


def test_a_csv_in_another_layout_is_refused(tmp_path: Path) -> None:
    path = _best_track_file(tmp_path)
    (tmp_path / "data" / "tracks.csv").write_text("storm_id,when\n1909,yesterday\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.keys == ["typhoon.best_track.file"]
    assert "best-track layout" in str(caught.value)


# --------------------------------------------------------------------------- finding scenarios


def test_find_scenario_by_stem_name_and_path(tmp_path: Path) -> None:
    assert find_scenario("lekima-2019") == SCENARIOS_DIR / "lekima-2019.toml"
    own = tmp_path / "my-file.toml"
    own.write_text(
        (SCENARIOS_DIR / "quiet-day.toml").read_text(encoding="utf-8").replace('"quiet-day"', '"calm"'),
        encoding="utf-8",
    )
    assert find_scenario("my-file", tmp_path) == own  # by file stem
    assert find_scenario("calm", tmp_path) == own  # by the scenario's name
    assert find_scenario(str(own)) == own  # by path, whatever the directory
    with pytest.raises(ScenarioError) as caught:
        find_scenario("no-such-scenario")
    assert "no such scenario" in str(caught.value)
    assert "lekima-2019" in str(caught.value)


def test_find_scenario_skips_broken_files_when_matching_names(tmp_path: Path) -> None:
    (tmp_path / "a-broken.toml").write_text("format_version = 1\n", encoding="utf-8")
    good = tmp_path / "b-good.toml"
    good.write_text((SCENARIOS_DIR / "quiet-day.toml").read_text(encoding="utf-8"), encoding="utf-8")
    assert find_scenario("quiet-day", tmp_path) == good


def test_the_scenarios_dir_can_be_moved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert shipped_scenarios_dir() == SCENARIOS_DIR
    monkeypatch.setenv(SCENARIOS_ENV, str(tmp_path))
    assert shipped_scenarios_dir() == tmp_path
    assert scenario_files() == []
