"""Hazard detectors: pure functions of (observation, per-key state) -> assessment."""
