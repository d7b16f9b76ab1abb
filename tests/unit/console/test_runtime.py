"""What the console's consumers read from records without a full parse: station heads and sensor faults."""

from __future__ import annotations

from datetime import timedelta

from schemas.assessment import Evidence, HazardAssessment
from schemas.observations import RainObservation
from services.console.runtime import assessment_health, observation_head
from services.console.testing import T0
from services.rules.detectors.health import SensorHealth, downgrade


def assessment(level: str = "orange") -> HazardAssessment:
    return HazardAssessment.model_validate(
        {
            "hazard": "rainstorm",
            "township_code": "330302006",
            "source_id": "G5801",
            "assessed_at": T0,
            "level": level,
            "rule_id": "rain_3h",
            "evidence": [Evidence(station_id="G5801", metric="rain_3h_mm", value=62.5, threshold=50.0)],
        }
    )


def test_observation_head() -> None:
    obs = RainObservation(station_id="G5801", observed_at=T0, rain_mm=2.5, interval_s=300, township_code="330302006")
    assert observation_head(obs.model_dump_json().encode()) == ("G5801", "rain", T0, 300, "330302006")
    assert observation_head(b'{"kind":"rain"}') is None


def test_assessment_health_reads_the_rules_suppression_marker() -> None:
    sound = assessment()
    assert assessment_health(sound.model_dump_json().encode()) == ("G5801", T0, None)
    for status in ("spike", "flatline", "implausible"):
        health = SensorHealth(station_id="G5801", status=status, checked_at=T0)
        suppressed = downgrade(sound, health)
        assert suppressed.level == "none"
        assert assessment_health(suppressed.model_dump_json().encode()) == ("G5801", T0, status)
    late = downgrade(sound, SensorHealth(station_id="G5801", status="stale", checked_at=T0 + timedelta(hours=1)))
    assert assessment_health(late.model_dump_json().encode()) == ("G5801", T0, None)  # stale is judged from obs.*
    assert assessment_health(b'{"kind":"assessment"}') is None
