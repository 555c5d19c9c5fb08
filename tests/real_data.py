"""Test helper (import as ``real_data``): where the real case lives (``../shared/data/real``), if anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def find_real_data() -> Path | None:
    """``$GLIOTYPE_REAL_DATA``, else the first ``shared/data/real`` above the repository."""
    env = os.environ.get("GLIOTYPE_REAL_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "real"
        if (cand / "TCGA-DU-7294").is_dir():
            return cand
    cand = Path("/work/shared/data/real")
    return cand if (cand / "TCGA-DU-7294").is_dir() else None


REAL_DATA = find_real_data()
requires_real_case = pytest.mark.skipif(REAL_DATA is None, reason="../shared/data/real is absent")
