"""The committed JSON Schemas in schemas/json/ must equal what the models export."""

from __future__ import annotations

from schemas.export import JSON_DIR, render_all


def test_exports_match_models() -> None:
    rendered = render_all()
    on_disk = {p.name for p in JSON_DIR.glob("*.schema.json")}
    assert on_disk == set(rendered), "schema files and models differ: run `make schemas`"
    for filename, text in rendered.items():
        assert (JSON_DIR / filename).read_text(encoding="utf-8") == text, f"{filename} is stale: run `make schemas`"


def test_observation_schema_is_a_discriminated_union() -> None:
    import json

    schema = json.loads(render_all()["observation.schema.json"])
    assert schema["discriminator"]["propertyName"] == "kind"
    assert set(schema["discriminator"]["mapping"]) == {"rain", "radar", "geohazard", "water_level"}
