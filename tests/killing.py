"""Test helper (import as ``killing``): stop a training as ``kill -9`` would, after some epochs.

``fit()`` looks up ``gliotype.utils.progress.progress`` at every call; wrapping it lets the
first ``epochs`` epochs of the training whose progress label contains ``desc`` finish (their
checkpoints are on disk) and then raises :class:`Killed` instead of the next epoch.
"""

from __future__ import annotations

import importlib


class Killed(Exception):
    """Stands for the process being killed after some epochs."""


def kill_after(monkeypatch, epochs: int, desc: str) -> None:
    """Make the next trainings labelled ``desc`` stop after ``epochs`` epochs (undo: ``monkeypatch.undo()``)."""
    progress = importlib.import_module("gliotype.utils.progress")
    real = progress.progress

    def killed(items, *args, **kwargs):
        for n, item in enumerate(real(items, *args, **kwargs)):
            if n == epochs and desc in args[0]:
                raise Killed
            yield item

    monkeypatch.setattr(progress, "progress", killed)


def killed_after(monkeypatch, epochs: int, desc: str, train) -> None:
    """Run ``train()`` killed after ``epochs`` epochs of its training labelled ``desc`` (its checkpoints
    stay on disk), then undo every patch of ``monkeypatch``, so that the next call resumes."""
    import pytest

    kill_after(monkeypatch, epochs, desc)
    with pytest.raises(Killed):
        train()
    monkeypatch.undo()
