"""Progress bars over patients (tqdm), silent when not on a terminal or when disabled.

The only gliotype setting read from the environment: ``GLIOTYPE_PROGRESS=0`` turns every bar off
(e.g. in benchmarks or logs that are a terminal). It changes what is displayed only, never
a result, a file or a cache key, so it stays an environment setting rather than an argument
threaded through every stage.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "patient") -> Iterable[T]:
    """Wrap ``items`` in a progress bar; ``GLIOTYPE_PROGRESS=0`` turns bars off."""
    disable = os.environ.get("GLIOTYPE_PROGRESS", "1") == "0" or not sys.stderr.isatty()
    return tqdm(items, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True)
