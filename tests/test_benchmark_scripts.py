"""The long experiment scripts of benchmarks/ start the real gliotype command (they run for hours in the
background, so a broken command line must fail here, not after the first cohort)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["learning_curves.py", "fidelity_matrix.py"])
def test_the_script_runs_the_gliotype_command(script):
    spec = importlib.util.spec_from_file_location(script[:-3], ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    done = subprocess.run(module._gliotype() + ["synth", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--patients" in done.stdout
