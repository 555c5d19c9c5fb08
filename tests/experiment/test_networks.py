"""Independent networks trained side by side (issue 17's faster demo): the same bytes as one
after the other in the run's own process, and a training whose process dies is left to the run."""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing as mp
import os
from pathlib import Path

import torch

from gliotype.config import load_config
from gliotype.experiment.networks import train_networks
from gliotype.utils.training import fit, torch_threads
from gliotype.utils.weights import save_weights


def toy_training(out: str, seed: int) -> None:
    """A small 3D network trained through ``fit`` (module level: it goes to a spawned process)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 8, 3, padding=1), torch.nn.BatchNorm3d(8), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(8, 1))
    g = torch.Generator().manual_seed(seed)
    data = [(torch.randn(6, 2, 12, 12, 12, generator=g), torch.randn(6, 1, generator=g)) for _ in range(3)]
    schedule = load_config("tiny").baselines.model_copy(update={"epochs": 3})

    def batch_loss(batch):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y)

    fit(model, batch_loss, data, schedule, Path(out) / "ckpt", f"toy {seed}", resume=False, seed=seed)
    save_weights(model, Path(out) / "model.safetensors")


def dies_in_a_child(out: str) -> None:
    if mp.parent_process() is not None:
        os._exit(3)  # as an out-of-memory kill would
    Path(out).write_text("trained in the run's own process")


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_side_by_side_gives_the_bytes_of_one_after_the_other(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # a process left alone takes every core
    config = load_config("tiny", overrides=["workers=2", "threads=1"])
    side = [functools.partial(toy_training, str(tmp_path / "side" / str(s)), s) for s in (0, 1, 2)]
    train_networks(side, config, "toy networks")  # spawned, 2 at a time
    with torch_threads(config.threads):
        for s in (0, 1, 2):  # what the run does without workers: in order, in its own process
            toy_training(str(tmp_path / "order" / str(s)), s)
    for s in (0, 1, 2):
        assert _digest(tmp_path / "side" / str(s)) == _digest(tmp_path / "order" / str(s))
    assert len({_digest(tmp_path / "side" / str(s)) for s in (0, 1, 2)}) == 3  # three different networks


def test_one_worker_trains_nothing_ahead(tmp_path):
    config = load_config("tiny", overrides=["workers=1"])
    train_networks([functools.partial(toy_training, str(tmp_path / "a"), 0),
                    functools.partial(toy_training, str(tmp_path / "b"), 1)], config, "toy networks")
    assert not (tmp_path / "a").exists()  # the run trains them in order where it needs them


def test_a_training_whose_process_dies_is_left_to_the_run(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="gliotype")
    config = load_config("tiny", overrides=["workers=2"])
    train_networks([functools.partial(dies_in_a_child, str(tmp_path / "x")),
                    functools.partial(toy_training, str(tmp_path / "ok"), 0)], config, "toy networks")
    assert (tmp_path / "ok" / "model.safetensors").exists()
    assert not (tmp_path / "x").exists()
    assert "a training process died; the network is trained again in the run's own process" in caplog.text
