"""Progress a person can follow when the output is not a terminal (issue 17): log lines with
the count, the time spent and an ETA for per-patient stages, and per training a start line and
a line every tenth of the epochs with the loss."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gliotype.config import load_config
from gliotype.utils.training import fit

P = importlib.import_module("gliotype.utils.progress")  # the package exports the function of that name


class Clock:
    """A clock the test moves: ``clock.t`` seconds."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gliotype.progress"]


@pytest.fixture(autouse=True)
def _progress_on(monkeypatch):
    monkeypatch.setenv("GLIOTYPE_PROGRESS", "1")


def test_duration_reads_like_a_person_writes_it():
    assert P.duration(4.26) == "4.3 s"
    assert P.duration(45) == "45 s"
    assert P.duration(125) == "2 min 05 s"
    assert P.duration(3780) == "1 h 03 min"


def test_lines_every_tenth_with_eta(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="gliotype")
    seen = []
    for i in P.ProgressLines(range(20), "preprocessing", clock=clock):
        clock.t += 3.0  # 3 s a patient
        seen.append(i)
    lines = _messages(caplog)
    assert seen == list(range(20))
    assert len(lines) == 10  # every second patient of 20
    assert lines[0] == "preprocessing: 2/20 patients (10%), 6.0 s, ETA 54 s"
    assert lines[4] == "preprocessing: 10/20 patients (50%), 30 s, ETA 30 s"
    assert lines[-1] == "preprocessing: 20/20 patients (100%), 1 min 00 s"  # no ETA at the end


def test_a_slow_item_gets_a_line_after_a_minute(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="gliotype")
    for i in P.ProgressLines(range(100), "radiomics", clock=clock):
        clock.t += 61.0 if i == 0 else 0.1
    lines = _messages(caplog)
    assert lines[0].startswith("radiomics: 1/100 patients (1%), 1 min 01 s, ETA ")  # not due by count, by time
    assert len(lines) == 11


def test_progress_writes_lines_when_not_a_terminal_and_nothing_when_off(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="gliotype")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert list(P.progress(range(5), "synth")) == list(range(5))
    assert _messages(caplog)[-1] == "synth: 5/5 patients (100%), " + _messages(caplog)[-1].split(", ")[-1]
    caplog.clear()
    monkeypatch.setenv("GLIOTYPE_PROGRESS", "0")
    assert list(P.progress(range(5), "synth")) == list(range(5))
    assert _messages(caplog) == []


def test_epoch_log_start_line_then_every_tenth_with_loss(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="gliotype")
    ep = P.EpochLog("multi-modal training", 15, clock=clock)
    for e in range(1, 16):
        clock.t += 10.0
        ep.epoch(e, 1.0 / e)
    lines = _messages(caplog)
    assert lines[0] == "multi-modal training: 15 epochs"
    assert [int(line.split("epoch ")[1].split("/")[0]) for line in lines[1:]] == [2, 4, 6, 8, 10, 12, 14, 15]
    assert lines[1] == "multi-modal training: epoch 2/15, loss 0.5000, 10 s/epoch, ETA 2 min 10 s"
    assert lines[-1] == "multi-modal training: epoch 15/15, loss 0.0667, 10 s/epoch"


def test_a_resumed_training_says_where_it_starts_and_times_only_its_own_epochs(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, logger="gliotype")
    ep = P.EpochLog("edge model", 10, start=6, clock=clock)
    clock.t += 8.0
    ep.epoch(7, 0.5)
    lines = _messages(caplog)
    assert lines[0] == "edge model: 10 epochs from epoch 7"
    assert lines[1] == "edge model: epoch 7/10, loss 0.5000, 8.0 s/epoch, ETA 24 s"


def test_fit_logs_the_loss_of_its_epochs(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    caplog.set_level(logging.INFO, logger="gliotype")
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    data = [(torch.randn(4, 3), torch.randn(4, 1)) for _ in range(2)]
    schedule = load_config("tiny").baselines.model_copy(update={"epochs": 4})

    def batch_loss(batch):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y)

    history = fit(model, batch_loss, data, schedule, tmp_path / "ckpt", "toy training", resume=False)
    lines = [m for m in _messages(caplog) if m.startswith("toy training")]
    assert lines[0] == "toy training: 4 epochs"
    assert len(lines) == 5  # start + every epoch (a tenth of 4 epochs rounds up to 1)
    assert lines[-1].startswith(f"toy training: epoch 4/4, loss {history[-1]['loss']:.4f}, ")


def test_a_cohort_command_in_a_log_file_shows_its_progress(tmp_path):
    log = tmp_path / "synth.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "OMP_NUM_THREADS": "1",
           "GLIOTYPE_PROGRESS": "1"}
    with open(log, "w") as stderr:  # a file, not a terminal, as under nohup or a cluster job
        done = subprocess.run([sys.executable, "-m", "gliotype", "synth", "--out", str(tmp_path / "c"), "--patients",
                               "3", "--seed", "1", "--resolution", "2", "--workers", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=stderr, timeout=300)
    text = log.read_text()
    assert done.returncode == 0, text
    assert "synth: 3/3 patients (100%)" in text
    assert "\r" not in text  # no bar redrawn in the file
