"""The wall time of each stage of ``gliotype run`` (summed over repeated splits), for the report."""

from __future__ import annotations

import time
from contextlib import contextmanager

from gliotype.utils.logging import get_logger

log = get_logger(__name__)


class Timer:
    """``with timer("stage"):`` logs the stage and adds its seconds to ``timer.seconds[stage]``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        log.info("stage: %s", name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - t0
            self.seconds[name] = round(self.seconds.get(name, 0.0) + spent, 1)
