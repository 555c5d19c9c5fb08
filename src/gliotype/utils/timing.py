"""Wall time of the consecutive steps of one job (reported in QC files and predictions)."""

from __future__ import annotations

import time


class Laps:
    """``laps("step")`` records the seconds since the previous lap (or since creation).

    ``laps.seconds`` maps each step to its time, rounded to ``ndigits``.
    """

    def __init__(self, ndigits: int = 2):
        self.seconds: dict[str, float] = {}
        self.ndigits = ndigits
        self._last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, self.ndigits)
        self._last = now
