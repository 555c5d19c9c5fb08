"""The long experiment scripts of benchmarks/ start the real gliotype command (they run for hours in the
background, so a broken command line must fail here, not after the first cohort)."""

from __future__ import annotations

import importlib.util
import re
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


def test_the_fidelity_matrix_judges_a_cell_only_where_the_signal_is_observable():
    import pandas as pd

    spec = importlib.util.spec_from_file_location("fidelity_matrix", ROOT / "benchmarks" / "fidelity_matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [("image", "fI + MLP", 0.90, 0.98), ("image", "fP + MLP", 0.60, 0.98),
            ("shape", "fP + MLP", 0.50, 0.82), ("shape", "fI + MLP", 0.40, 0.82),
            ("network", "fB + MLP", 0.45, 0.52), ("network", "fI + MLP", 0.50, 0.52)]
    done = pd.DataFrame(rows, columns=["signal", "model", "auc", "observable_auc"])
    shown = module.matrix(done)
    assert shown.loc["image", "fI + MLP"] == "0.900 *"
    assert shown.loc["image", "fP + MLP"] == "0.600"  # not the encoder built for it: not judged
    assert shown.loc["shape", "fP + MLP"] == "0.500 (below 0.8 x observable)"
    assert shown.loc["network", "fB + MLP"] == "0.450 (observable ceiling at chance: not judged)"
    assert shown.loc["network", "observable"] == "0.520"


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
    # one core's measured speed: machines of one CPU name differ by 2x
    assert re.search(r"- one core .*: \d+ GFLOP/s matrix product, \d+ GFLOP/s convolution; widest vectors ", text)
    assert "## bench_fast\n" in text and "exit 0" in text and "     10     1.25\n```" in text
    assert "## bench_broken\n" in text and "exit 3" in text
    assert text.index("## bench_broken") < text.index("## bench_fast")  # in name order


def test_the_learning_curves_resume_by_size_and_split():
    """A finished (size, split seed) pair is skipped; every other pair runs, sizes first."""
    import pandas as pd

    spec = importlib.util.spec_from_file_location("learning_curves", ROOT / "benchmarks" / "learning_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    empty = pd.DataFrame(columns=["patients", "split_seed"])
    assert module.pending(empty, [200, 800], [0, 1]) == [(200, 0), (200, 1), (800, 0), (800, 1)]
    done = pd.DataFrame({"patients": [800, 800, 200], "split_seed": [0, 0, 1], "model": ["a", "b", "a"]})
    assert module.pending(done, [200, 800], [0, 1, 2]) == [(200, 0), (200, 2), (800, 1), (800, 2)]
