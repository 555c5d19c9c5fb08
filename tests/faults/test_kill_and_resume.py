"""`kill -9` of a real `gliotype run` process at several points, then the same command until it
finishes: every table, every prediction and every file of the exported model equal an
uninterrupted run's, byte for byte (issue 14, the fault-injection suite).

The kill points are stages' files appearing on disk (a preprocessed patient, a multi-modal
checkpoint, a trained Table 2 row, a CNN baseline checkpoint), so they do not depend on the
machine's speed. The whole process group is killed, worker processes included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gliotype.synthetic import SynthConfig, generate_cohort

pytestmark = pytest.mark.slow

#: (what, where the file appears) in the order a run writes them.
KILL_POINTS = (
    ("preprocessing", "work/patients/*/done.json"),
    ("CNN baselines", "models/resnet34/checkpoints/*"),  # beside the self-supervised models (workers=2)
    ("multi-modal training", "models/*_MLP/checkpoints/*"),
    ("population graphs", "population_graphs/*/row.json"),
)
#: Outputs compared byte for byte (timings and the HTML report are not).
COMPARED = ("results/table2.csv", "results/table3.csv", "results/table4.csv", "results/predictions.csv",
            "results/audit.csv", "model/**/*")


def _command(cohort: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "gliotype", "run", "--data", str(cohort), "--out", str(out), "--preset", "tiny",
            "--set", "workers=2"]


def _env() -> dict:
    src = Path(__file__).resolve().parents[2] / "src"
    return {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _kill_when(cohort: Path, out: Path, pattern: str, timeout: float = 900.0) -> bool:
    """Start the run; SIGKILL its process group as soon as a file matches ``pattern`` under ``out``.
    Returns False when the run finished before (the point had passed on an earlier start)."""
    proc = subprocess.Popen(_command(cohort, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    before = set(out.glob(pattern))
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < timeout:
        if set(out.glob(pattern)) - before:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the run did not reach {pattern} within {timeout:.0f} s")
    return False


def _outputs(run: Path) -> dict[str, bytes]:
    files = {p for pattern in COMPARED for p in run.glob(pattern) if p.is_file()}
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(files)}


def test_killed_at_every_stage_and_resumed_equals_uninterrupted(tmp_path):
    cohort = tmp_path / "cohort"
    generate_cohort(cohort, SynthConfig(patients=24, seed=5, prevalence=0.5, fa_cases=6, workers=2))
    plain, killed = tmp_path / "plain", tmp_path / "killed"
    done = subprocess.run(_command(cohort, plain), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    reached = [what for what, pattern in KILL_POINTS if _kill_when(cohort, killed, pattern)]
    assert reached == [what for what, _ in KILL_POINTS]  # killed once in each stage
    again = subprocess.run(_command(cohort, killed), env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    a, b = _outputs(plain), _outputs(killed)
    assert "model/multimodal/model.safetensors" in a and "results/table4.csv" in a
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] != b[name]] == []
