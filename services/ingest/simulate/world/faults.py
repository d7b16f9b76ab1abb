"""Deliberate sensor and delivery faults, and the delivery queue that makes reports late.

Per report, in this order (each a draw from the station's own fault stream, ``[faults]``
rates are probabilities per report)::

    measured report
      1 dropout ────────────────▶ never delivered
      2 stuck      a spell of stuck_duration_s starts (rate) or is running: the value
                   fields repeat what the sensor said when it stuck
      3 spike      the value jumps (rain +2…20 mm, level ±1…5 m, displacement ±20…220 mm);
                   a spike beyond the contract's bounds becomes an invalid raw payload
      4 skew       the station's clock is off by its fixed skew: observed_at shifts
      5 malformed  delivered as broken bytes (truncated JSON / wrong type / missing field)
      6 late       delivered ⌈delay / 60 s⌉ ticks later (delay ~ late_delay)
        or out-of-order  held back and delivered right after the station's next report
                   (or after ``max_hold_s`` if the station falls silent, e.g. a failed slope)
      7 duplicate  delivered twice, the copy right after the original

Before all of them, a rain gauge inside a scripted ``phantom_rain`` spell reports that spell's
rate (a ±25 % sawtooth of 7-min period, so no flat line) instead of what it measured. No
draw: the spell is in the scenario, and in the truth's ``station_faults`` as
``phantom_rain`` with the rate as detail.

Stuck and spike apply to point sensors (rain, water level, geo-hazard), not to radar
scans; everything else applies to every station. Ten uniforms are consumed per report,
used or not, so one fault's rate never shifts another's draws. Counts go to the ground
truth (``fault_counts``); stuck spells and skewed clocks are listed per station
(``station_faults``) so a sensor-health detector can be judged.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from schemas.observations import ObservationBase, RainObservation
from services.ingest.simulate.scenario import TICK_S, FaultConfig, LateDelay
from services.ingest.simulate.truth import GroundTruth
from services.ingest.simulate.world import rng

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Payload = ObservationBase | bytes
SpikeFn = Callable[[dict[str, Any], float], None]

FAULT_WIDTH: Final = 10
_DROP, _STUCK, _SPIKE, _SPIKE_SIZE, _MALFORMED, _VARIANT, _LATE, _DELAY, _OOO, _DUP = range(FAULT_WIDTH)

FAULT_KINDS: Final = (
    "dropout", "stuck", "spike", "clock_skew", "malformed", "late", "out_of_order", "duplicate",
)  # fmt: skip


def late_delay_s(delay: LateDelay, u: float) -> float:
    """Inverse-CDF draw of a delivery delay from one uniform."""
    if delay.distribution == "uniform":
        high = min(delay.max_s, 2.0 * delay.mean_s - delay.min_s)
        value = delay.min_s + u * (high - delay.min_s)
    elif delay.distribution == "lognormal":
        z = float(rng.normal_from_uniform(u))
        value = delay.min_s + (delay.mean_s - delay.min_s) * math.exp(z - 0.5)
    else:
        value = delay.min_s - (delay.mean_s - delay.min_s) * math.log1p(-min(u, 1.0 - 1e-12))
    return min(max(value, delay.min_s), delay.max_s)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_bytes(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, default=_json_default, separators=(",", ":")).encode()


def rain_spike(fields: dict[str, Any], u: float) -> None:
    fields["rain_mm"] = round(float(fields["rain_mm"]) + 2.0 + 18.0 * u, 1)


def level_spike(fields: dict[str, Any], u: float) -> None:
    sign = 1.0 if u >= 0.5 else -1.0
    fields["level_m"] = round(float(fields["level_m"]) + sign * (1.0 + 8.0 * abs(u - 0.5)), 3)


def displacement_spike(fields: dict[str, Any], u: float) -> None:
    sign = 1.0 if u >= 0.5 else -1.0
    fields["displacement_mm"] = round(float(fields["displacement_mm"]) + sign * (20.0 + 400.0 * abs(u - 0.5)), 2)


@dataclass(slots=True)
class Delivery:
    """What one report became after the faults: payloads and how to deliver them."""

    payload: Payload
    delay_s: int = 0
    hold_for_next: bool = False
    duplicate: bool = False


class FaultGroup:
    """Faults for one group of stations of the same kind (one stream per station)."""

    def __init__(
        self,
        *,
        station_ids: Sequence[str],
        model: type[ObservationBase],
        value_fields: tuple[str, ...],
        primary_field: str,
        spike: SpikeFn | None,
        config: FaultConfig,
        seed: int,
        truth: GroundTruth,
    ) -> None:
        self.station_ids = tuple(station_ids)
        self.model = model
        self.value_fields = value_fields
        self.primary_field = primary_field
        self.spike = spike
        self.config = config
        self.truth = truth
        self._kind = str(model.model_fields["kind"].default)
        n = len(station_ids)
        self.enabled = _any_fault(config)
        self.streams = rng.StationStreams(seed, rng.FAULTS, station_ids, FAULT_WIDTH) if self.enabled else None
        self.stuck_until = np.zeros(n)
        self.stuck_since: list[datetime | None] = [None] * n
        self.stuck_values: list[dict[str, Any]] = [{} for _ in range(n)]
        self.skew_s = np.zeros(n)
        self.phantoms: dict[int, list[tuple[float, float, float]]] = {}
        if model is RainObservation:
            index = {sid: i for i, sid in enumerate(station_ids)}
            for spell in config.phantom_rain:
                if spell.station_id in index:
                    self.phantoms.setdefault(index[spell.station_id], []).append(
                        (spell.start.timestamp(), spell.end.timestamp(), spell.rate_mm_h)
                    )
                    record = truth.record_station_fault
                    record("phantom_rain", spell.station_id, spell.start, spell.end, spell.rate_mm_h)
        if config.clock_skew_fraction > 0.0 and config.clock_skew_s > 0.0:
            for i, sid in enumerate(station_ids):
                u = rng.station_generator(seed, rng.SETUP, f"skew:{sid}").random(3)
                if u[0] < config.clock_skew_fraction:
                    sign = 1.0 if u[1] < 0.5 else -1.0
                    self.skew_s[i] = round(sign * config.clock_skew_s * (0.5 + 0.5 * u[2]))

    def describe_skews(self, start: datetime, end: datetime) -> None:
        for i, sid in enumerate(self.station_ids):
            if self.skew_s[i]:
                self.truth.record_station_fault("clock_skew", sid, start, end, float(self.skew_s[i]))

    def close_stuck(self, end: datetime) -> None:
        for i, since in enumerate(self.stuck_since):
            if since is not None:
                stop = min(end, datetime.fromtimestamp(float(self.stuck_until[i]), tz=UTC))
                self.truth.record_station_fault("stuck", self.station_ids[i], since, stop)
                self.stuck_since[i] = None

    def apply(self, at: datetime, idx: IntArray, reports: list[dict[str, Any]]) -> list[tuple[int, Delivery]]:
        """Turn measured reports (field dicts, one per station index) into deliveries."""
        count = self.truth.count_fault
        count("reports", len(reports))
        if self.phantoms:
            self._phantom(at.timestamp(), idx, reports)
        if not self.enabled or self.streams is None:
            return [(int(i), Delivery(self._build(fields))) for i, fields in zip(idx, reports, strict=True)]
        cfg = self.config
        draws = self.streams.draw(idx)
        t_s = at.timestamp()
        out: list[tuple[int, Delivery]] = []
        for row, (i_raw, fields) in enumerate(zip(idx, reports, strict=True)):
            i = int(i_raw)
            u = draws[row]
            if u[_DROP] < cfg.dropout_rate:
                count("dropout")
                continue
            if self.value_fields:
                self._stuck(i, at, t_s, u[_STUCK], fields)
            if self.spike is not None and u[_SPIKE] < cfg.spike_rate:
                self.spike(fields, float(u[_SPIKE_SIZE]))
                count("spike")
            if self.skew_s[i]:
                fields["observed_at"] = fields["observed_at"] + timedelta(seconds=float(self.skew_s[i]))
                count("clock_skew")
            payload: Payload
            if u[_MALFORMED] < cfg.malformed_rate:
                payload = self._malformed(fields, float(u[_VARIANT]))
                count("malformed")
            else:
                payload = self._build(fields)
            delivery = Delivery(payload)
            if u[_LATE] < cfg.late_rate:
                delivery.delay_s = round(late_delay_s(cfg.late_delay, float(u[_DELAY])))
                count("late")
            elif u[_OOO] < cfg.out_of_order_rate:
                delivery.hold_for_next = True
                count("out_of_order")
            if u[_DUP] < cfg.duplicate_rate:
                delivery.duplicate = True
                count("duplicate")
            out.append((i, delivery))
        return out

    def _phantom(self, t_s: float, idx: IntArray, reports: list[dict[str, Any]]) -> None:
        for i, fields in zip(idx.tolist(), reports, strict=True):
            for start, end, rate in self.phantoms.get(i, ()):
                if start <= t_s < end:
                    # a sawtooth of ±25 % over 7 reports' minutes: not a flat line the health check knows
                    swing = 0.75 + 0.5 * (int((t_s - start) // 60) % 7) / 6.0
                    fields["rain_mm"] = round(rate * swing * float(fields["interval_s"]) / 3600.0, 1)
                    self.truth.count_fault("phantom_rain")
                    break

    def _stuck(self, i: int, at: datetime, t_s: float, u: float, fields: dict[str, Any]) -> None:
        if self.stuck_until[i] > t_s:
            fields.update(self.stuck_values[i])
            self.truth.count_fault("stuck")
            return
        if self.stuck_since[i] is not None:
            self.close_stuck_one(i)
        if u < self.config.stuck_rate:
            self.stuck_until[i] = t_s + self.config.stuck_duration_s
            self.stuck_since[i] = at
            self.stuck_values[i] = {name: fields[name] for name in self.value_fields if name in fields}
            self.truth.count_fault("stuck_spells")

    def close_stuck_one(self, i: int) -> None:
        since = self.stuck_since[i]
        if since is not None:
            until = datetime.fromtimestamp(float(self.stuck_until[i]), tz=UTC)
            self.truth.record_station_fault("stuck", self.station_ids[i], since, until)
            self.stuck_since[i] = None

    def _build(self, fields: dict[str, Any]) -> Payload:
        try:
            return self.model(**fields)
        except ValidationError:
            self.truth.count_fault("invalid")
            return to_json_bytes({"kind": self._kind, **fields})

    def _malformed(self, fields: dict[str, Any], u: float) -> bytes:
        data = {"kind": self._kind, **fields}
        variant = int(u * 3.0)
        if variant == 0:
            raw = to_json_bytes(data)
            return raw[: max(1, len(raw) // 2)]
        if variant == 1:
            data[self.primary_field] = "###"
            return to_json_bytes(data)
        data.pop("observed_at", None)
        return to_json_bytes(data)


def _any_fault(cfg: FaultConfig) -> bool:
    return any(
        rate > 0.0
        for rate in (
            cfg.dropout_rate,
            cfg.stuck_rate,
            cfg.spike_rate,
            cfg.duplicate_rate,
            cfg.late_rate,
            cfg.out_of_order_rate,
            cfg.malformed_rate,
            cfg.clock_skew_fraction,
        )
    )


class DeliveryQueue:
    """Payloads waiting for their delivery tick; out-of-order reports wait for the next one.

    Within a tick, delayed payloads come first (in generation order), then the payloads
    generated for that tick. Most reports are on time, so they skip the heap. A held
    (out-of-order) payload whose station has not reported again within ``max_hold_s`` is
    delivered then: a station that fell silent (a failed slope) must not keep its last
    reports until the end of the run, and nothing stays queued longer than the bound.
    """

    def __init__(self, max_hold_s: int | None = None) -> None:
        self._heap: list[tuple[int, int, Payload]] = []  # (deliver_s, seq, payload): seq breaks ties
        self._now: list[Payload] = []
        self._now_s: int | None = None
        self._held: dict[str, list[Payload]] = {}
        self._held_since: dict[str, int] = {}
        self._max_hold_s = max_hold_s
        self._seq = 0

    def _push(self, deliver_s: int, payload: Payload) -> None:
        heapq.heappush(self._heap, (deliver_s, self._seq, payload))
        self._seq += 1

    def put(self, at_s: int, station_id: str, delivery: Delivery) -> None:
        copies = [delivery.payload, delivery.payload] if delivery.duplicate else [delivery.payload]
        if delivery.hold_for_next:
            self._held.setdefault(station_id, []).extend(copies)
            self._held_since.setdefault(station_id, at_s)
            return
        held = None
        if self._held:
            held = self._held.pop(station_id, None)
            self._held_since.pop(station_id, None)
        if delivery.delay_s <= 0:
            if self._now_s != at_s:
                self._flush_now()
                self._now_s = at_s
            self._now.extend(copies)
            if held:
                self._now.extend(held)
            return
        deliver_s = at_s + math.ceil(delivery.delay_s / TICK_S) * TICK_S
        for payload in copies:
            self._push(deliver_s, payload)
        for payload in held or ():
            self._push(deliver_s, payload)

    def _flush_now(self) -> None:
        if self._now and self._now_s is not None:
            for payload in self._now:
                self._push(self._now_s, payload)
        self._now = []
        self._now_s = None

    def release_held(self, at_s: int) -> None:
        self._flush_now()
        for station_id in sorted(self._held):
            for payload in self._held[station_id]:
                self._push(at_s, payload)
        self._held.clear()
        self._held_since.clear()

    def _release_stale(self, at_s: int) -> None:
        if self._max_hold_s is None:
            return
        stale = sorted(sid for sid, since in self._held_since.items() if at_s - since >= self._max_hold_s)
        for station_id in stale:
            del self._held_since[station_id]
            for payload in self._held.pop(station_id):
                self._push(at_s, payload)

    def pop_ready(self, at_s: int) -> tuple[list[ObservationBase], list[bytes]]:
        if self._now_s is not None and self._now_s > at_s:
            self._flush_now()
        if self._held_since:
            self._release_stale(at_s)
        ready: list[Payload] = []
        while self._heap and self._heap[0][0] <= at_s:
            ready.append(heapq.heappop(self._heap)[2])
        if self._now_s is not None:
            ready.extend(self._now)
            self._now = []
            self._now_s = None
        observations: list[ObservationBase] = []
        raw: list[bytes] = []
        for payload in ready:
            if isinstance(payload, bytes):
                raw.append(payload)
            else:
                observations.append(payload)
        return observations, raw

    def __len__(self) -> int:
        return len(self._heap) + len(self._now) + sum(len(v) for v in self._held.values())
