"""Root conftest: puts ``tests/`` on ``sys.path`` so test modules can import shared helpers
(``real_data``), keeps parallel test workers from oversubscribing the CPU, and lets ``caplog``
see gliotype's log records in every test."""

import logging
import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers x two torch threads each on two cores: OpenMP spin-waits make that far slower
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _gliotype_logs_reach_caplog():
    """A CLI test run earlier in the same process set up the ``gliotype`` logger without
    propagation (its own stderr handler): caplog, on the root logger, would see nothing.
    (Not through ``monkeypatch``: tests that call ``monkeypatch.undo()`` would undo it.)"""
    logger = logging.getLogger("gliotype")
    before, logger.propagate = logger.propagate, True
    yield
    logger.propagate = before
