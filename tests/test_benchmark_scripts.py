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


def test_make_bench_writes_the_machine_the_date_and_every_output(tmp_path):
    """`make bench` (benchmarks/run_all.py) writes benchmarks/results.md: the machine and the date first, then each
    benchmark's own output, wall time and exit code."""
    import sys

    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "run_all.py").write_text((ROOT / "benchmarks" / "run_all.py").read_text())
    (bench / "bench_fast.py").write_text("print('patients  seconds')\nprint('     10     1.25')\n")
    (bench / "bench_broken.py").write_text("raise SystemExit(3)\n")
    out = tmp_path / "results.md"
    done = subprocess.run([sys.executable, str(bench / "run_all.py"), "--out", str(out)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and "failed: bench_broken.py" in done.stdout
    text = out.read_text()
    assert text.startswith("# Benchmarks (`make bench`)")
    assert "- date: 20" in text and " cores, " in text and "torch " in text
    assert "## bench_fast\n" in text and "exit 0" in text and "     10     1.25\n```" in text
    assert "## bench_broken\n" in text and "exit 3" in text
    assert text.index("## bench_broken") < text.index("## bench_fast")  # in name order
