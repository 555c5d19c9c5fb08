"""Progress bars over patients (tqdm), silent when not on a terminal or when disabled."""

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
