"""Deterministic randomness: one ``numpy.random.default_rng`` stream per (concern, station).

Every stream is seeded from ``SeedSequence(entropy=seed, spawn_key=(concern, key))`` with
``key`` a stable hash of the station id. So:

- the same seed gives the same world, run after run;
- noise and faults use separate streams: turning faults on does not change the noise;
- a station's draws do not depend on which other stations exist (adding a gauge changes
  no other gauge's numbers).

Draws are consumed at a fixed rate (``width`` uniforms per report, used or not), and
buffered per station in blocks so that one tick's draws for hundreds of stations are one
vectorised gather instead of hundreds of generator calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri  # type: ignore[import-untyped]  # scipy ships no type information

from services.ingest.simulate.world.network import stable_key

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

NOISE: Final = 1
FAULTS: Final = 2
SETUP: Final = 3
RADAR: Final = 4
_EPS = 1e-12


def generator(seed: int, concern: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(concern, *keys)))


def station_generator(seed: int, concern: int, station_id: str) -> np.random.Generator:
    return generator(seed, concern, stable_key(station_id))


def normal_from_uniform(u: npt.ArrayLike) -> FloatArray:
    """Standard normal deviates from uniforms (inverse CDF), vectorised."""
    result: FloatArray = ndtri(np.clip(np.asarray(u, dtype=np.float64), _EPS, 1.0 - _EPS))
    return result


class StationStreams:
    """``width`` uniforms per report for each station, from that station's own stream."""

    def __init__(self, seed: int, concern: int, station_ids: Sequence[str], width: int, block: int = 128) -> None:
        self.width = width
        self.block = block
        self._gens = [station_generator(seed, concern, sid) for sid in station_ids]
        self._buf = np.empty((len(station_ids), block, width))
        self._pos = np.full(len(station_ids), block, dtype=np.intp)

    def draw(self, idx: IntArray) -> FloatArray:
        """One report's uniforms for each station in ``idx``: shape ``(len(idx), width)``."""
        pos = self._pos[idx]
        for i in idx[pos >= self.block]:
            self._buf[i] = self._gens[i].random((self.block, self.width))
            self._pos[i] = 0
        pos = self._pos[idx]
        out: FloatArray = self._buf[idx, pos]
        self._pos[idx] = pos + 1
        return out
