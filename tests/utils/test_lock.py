"""One command per run or work folder (issue 14, case 3): a second is refused with one line
naming the holder; a holder killed with -9 leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from gliotype.errors import GliotypeError
from gliotype.layout import RunDir, WorkDir
from gliotype.utils.lock import folder_lock

HOLD = """
import sys, time
from gliotype.utils.lock import folder_lock
with folder_lock(sys.argv[1], "run folder"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_holder_is_refused_in_one_line(tmp_path):
    run = RunDir(tmp_path / "run")
    with folder_lock(run.lock, "run folder"):
        with pytest.raises(GliotypeError) as err:
            with folder_lock(run.lock, "run folder"):
                pass
    text = str(err.value)
    assert f"process {os.getpid()}" in text and "run folder run is in use" in text and len(text.splitlines()) == 1
    with folder_lock(run.lock, "run folder"):  # released: free again
        pass


def test_another_process_holds_it_until_killed(tmp_path):
    work = WorkDir(tmp_path / "work")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(work.lock)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(GliotypeError, match=f"process {child.pid} on "):
            with folder_lock(work.lock, "work folder"):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.time() + 10
    while True:  # the kernel released the dead holder's lock: the stale file does not block
        try:
            with folder_lock(work.lock, "work folder"):
                break
        except GliotypeError:
            assert time.time() < deadline
            time.sleep(0.1)
    assert work.lock.exists()


def test_run_experiment_refuses_a_folder_in_use(tmp_path):
    from gliotype.config import load_config
    from gliotype.experiment import run_experiment

    run = RunDir(tmp_path / "run")
    with folder_lock(run.lock, "run folder"):
        with pytest.raises(GliotypeError, match="in use"):
            run_experiment(run, load_config("tiny"), data=tmp_path / "no-cohort")
