"""Progress a person can follow: a bar on a terminal, log lines otherwise.

On a terminal, :func:`progress` draws a tqdm bar. When the output is not a terminal (a log
file, ``nohup``, a cluster job), a bar would vanish into the file as one unreadable line, so
:func:`progress` writes a log line instead at every tenth of the items (and at least once a
minute, and at the end) with the count, the time spent and an ETA::

    13:10:41 INFO    preprocessing: 40/200 patients (20%), 2 min 05 s, ETA 8 min 20 s

Trainings write one line when they start and one every tenth of their epochs with the loss
(:class:`EpochLog`)::

    13:12:07 INFO    multi-modal training (models-B/Multi_modal_full_model_MLP): epoch 4/15, loss 0.6412, 5.6 s/epoch, ETA 1 min 02 s

The only gliotype setting read from the environment: ``GLIOTYPE_PROGRESS=0`` turns every bar and
every progress line off (e.g. in benchmarks or tests). It changes what is displayed only, never a
result, a file or a cache key, so it stays an environment setting rather than an argument
threaded through every stage.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

from gliotype.utils.logging import get_logger

T = TypeVar("T")

log = get_logger("progress")

#: A progress line at least every this many seconds (besides every tenth of the items).
LINE_SECONDS = 60.0
#: Lines per job: one at every ``1 / LINES`` of the items.
LINES = 10


def enabled() -> bool:
    """False when ``GLIOTYPE_PROGRESS=0``: no bar, no progress line."""
    return os.environ.get("GLIOTYPE_PROGRESS", "1") != "0"


def bars_shown() -> bool:
    """Whether progress is drawn as bars: enabled and the output is a terminal."""
    return enabled() and sys.stderr.isatty()


def duration(seconds: float) -> str:
    """``'45 s'``, ``'2 min 05 s'``, ``'1 h 03 min'``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        m, s = divmod(int(round(seconds)), 60)
        return f"{m} min {s:02d} s"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h} h {m:02d} min"


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "patient",
             lines: bool = True) -> Iterable[T]:
    """Wrap ``items``: a bar on a terminal, else (with ``lines``) log lines with an ETA
    (:class:`ProgressLines`); nothing with ``GLIOTYPE_PROGRESS=0``."""
    if bars_shown():
        return tqdm(items, desc=desc, total=total, unit=unit, dynamic_ncols=True)
    if not (enabled() and lines):
        return tqdm(items, desc=desc, total=total, unit=unit, disable=True)
    return ProgressLines(items, desc, total, unit)


class ProgressLines:
    """Iterates ``items`` and logs ``desc: k/n units (p%), spent, ETA`` at every tenth of them,
    at least every :data:`LINE_SECONDS`, and after the last one (``close()`` is a no-op, as for a
    finished bar)."""

    def __init__(self, items: Iterable[T], desc: str, total: int | None = None, unit: str = "patient",
                 clock=time.monotonic):
        self.items, self.desc, self.unit, self.clock = items, desc, unit, clock
        self.total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
        self.step = max(1, math.ceil(self.total / LINES)) if self.total else 1

    def __iter__(self) -> Iterator[T]:
        start = last = self.clock()
        done = 0
        for item in self.items:
            yield item
            done += 1
            now = self.clock()
            if done % self.step == 0 or done == self.total or now - last >= LINE_SECONDS:
                log.info("%s", self.line(done, now - start))
                last = now

    def line(self, done: int, spent: float) -> str:
        """The progress line after ``done`` items in ``spent`` seconds."""
        units = self.unit if done == 1 and self.total in (None, 1) else f"{self.unit}s"
        if not self.total:
            return f"{self.desc}: {done} {units}, {duration(spent)}"
        eta = spent / done * (self.total - done) if done else float("nan")
        text = f"{self.desc}: {done}/{self.total} {units} ({100 * done / self.total:.0f}%), {duration(spent)}"
        return text + ("" if done >= self.total else f", ETA {duration(eta)}")

    def close(self) -> None:
        """Nothing to clear (the interface of a tqdm bar)."""


class EpochLog:
    """The log lines of one training: one when it starts, then every tenth of the epochs (and
    the last) with the loss, the seconds per epoch and an ETA. Silent with ``GLIOTYPE_PROGRESS=0``;
    on a terminal only the start line (the bar shows the rest)."""

    def __init__(self, desc: str, epochs: int, start: int = 0, clock=time.monotonic):
        self.desc, self.epochs, self.start, self.clock = desc, int(epochs), int(start), clock
        self.t0 = clock()
        self.step = max(1, math.ceil(self.epochs / LINES))
        self.last = self.t0
        if enabled() and self.start < self.epochs:
            begun = f" from epoch {self.start + 1}" if self.start else ""
            log.info("%s: %d epochs%s", desc, self.epochs, begun)

    def epoch(self, epoch: int, loss: float, **extra: float) -> str | None:
        """Log epoch ``epoch`` (1-based) when it is due; returns the line (None when not due)."""
        now = self.clock()
        due = epoch % self.step == 0 or epoch == self.epochs or now - self.last >= LINE_SECONDS
        if not (due and enabled() and not bars_shown()):
            return None
        per = (now - self.t0) / max(1, epoch - self.start)
        parts = [f"{self.desc}: epoch {epoch}/{self.epochs}", f"loss {loss:.4f}"]
        parts += [f"{k} {v:.4f}" for k, v in extra.items()]
        parts.append(f"{duration(per)}/epoch")
        if epoch < self.epochs:
            parts.append(f"ETA {duration(per * (self.epochs - epoch))}")
        line = ", ".join(parts)
        log.info("%s", line)
        self.last = now
        return line


__all__ = ["EpochLog", "ProgressLines", "bars_shown", "duration", "enabled", "progress"]
