"""Shared training loop: checkpoints, early stopping, safe loading (unreadable and foreign
checkpoints: test_checkpoints.py)."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from gliotype.config.schema import ScheduleConfig
from gliotype.utils.training import fit
from gliotype.utils.weights import load_weights, save_weights


def _setup(epochs=10):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    x = torch.randn(32, 2)
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8, shuffle=True,
                        generator=torch.Generator())
    schedule = ScheduleConfig(optimizer="sgd", lr=0.05, epochs=epochs, lr_step_epochs=3, batch_size=8)
    loss = lambda b: (torch.nn.functional.mse_loss(model(b[0]), b[1]), {"mse": 1.0})  # noqa: E731
    return model, loader, schedule, loss


def test_early_stopping_restores_the_best_weights(tmp_path):
    model, loader, schedule, loss = _setup()
    val = iter([3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    snapshots = []

    def validate():
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(val)

    history = fit(model, loss, loader, schedule, tmp_path, "t", validate=validate, patience=2)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert all(h["mse"] == 1.0 for h in history)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshots[2][k])
    assert (tmp_path / "history.csv").read_text().startswith("epoch,loss,lr,mse,val_loss,seconds")
    # a rerun sees the early stop and trains no further
    again = fit(model, loss, loader, schedule, tmp_path, "t", validate=lambda: 0.0, patience=2)
    assert len(again) == 5


def test_step_schedule_multiplies_the_rate(tmp_path):
    model, loader, schedule, loss = _setup(epochs=7)
    lrs = [h["lr"] for h in fit(model, loss, loader, schedule, tmp_path, "t")]
    assert lrs == pytest.approx([0.05] * 3 + [0.045] * 3 + [0.0405])


def test_weights_roundtrip_through_safetensors(tmp_path):
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    save_weights(a, tmp_path / "w.safetensors")
    load_weights(b, tmp_path / "w.safetensors")
    torch.testing.assert_close(a.weight, b.weight)


def test_a_checkpoint_of_another_key_is_not_resumed(tmp_path):
    model, loader, schedule, loss = _setup(epochs=3)
    calls = []

    def counted(batch):
        calls.append(1)
        return loss(batch)

    assert len(fit(model, counted, loader, schedule, tmp_path, "t", key="config A")) == 3
    n = len(calls)
    assert len(fit(model, counted, loader, schedule, tmp_path, "t", key="config A")) == 3
    assert len(calls) == n  # finished under the same key: nothing trained
    assert len(fit(model, counted, loader, schedule, tmp_path, "t", key="config B")) == 3
    assert len(calls) == 2 * n  # another key: trained anew from epoch 1
    assert (tmp_path / "key.txt").read_text() == "config B"
