"""Helpers of the tests that render reports in headless Chromium with ``tools/check_reports.py``
(import as ``report_check``): run the checker, and skip with the reason when Chromium is not installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_reports.py"
NO_CHROMIUM = "Chromium is not installed (apt-get install chromium chromium-driver)"


def load_tool():
    """``tools/check_reports.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("check_reports", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def has_chromium() -> bool:
    tool = load_tool()
    try:
        tool.find_chromium(None)
    except tool.ChromiumMissing:
        return False
    return True


needs_chromium = pytest.mark.skipif(not has_chromium(), reason=NO_CHROMIUM)


def check_reports(*args) -> subprocess.CompletedProcess:
    """The checker run as `make check-reports` runs it, on ``args`` (reports, ``--out``, options)."""
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=300)


def assert_reports_pass(reports, out: Path) -> None:
    """Every report renders with no problem at both laptop viewports (the checker's lines otherwise)."""
    res = check_reports("--out", out, *reports)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(list(Path(out).glob("*.png"))) == 2 * len(list(reports))
