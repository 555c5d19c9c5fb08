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


def _snapshots_after_each_epoch(tmp_path, epochs):
    """The weights after every epoch of an uninterrupted training (the reference of an average)."""
    snapshots = []
    for n in range(1, epochs + 1):  # each epoch is a function of the seed and its number
        model, loader, schedule, loss = _setup(epochs=n)
        fit(model, loss, loader, schedule, tmp_path / f"ref{n}", "t")
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
    return snapshots


def test_weight_averaging_returns_the_mean_of_the_last_epochs_weights(tmp_path):
    snapshots = _snapshots_after_each_epoch(tmp_path, 6)
    model, loader, schedule, loss = _setup(epochs=6)
    fit(model, loss, loader, schedule, tmp_path / "swa", "t", average_from=4)
    for k, v in model.state_dict().items():  # epochs 4, 5, 6
        torch.testing.assert_close(v, sum(s[k] for s in snapshots[3:]) / 3)
    assert not torch.allclose(model.weight, snapshots[-1]["weight"])  # not the last weights
    # average_from beyond the last epoch: nothing averaged, the last weights
    model, loader, schedule, loss = _setup(epochs=6)
    fit(model, loss, loader, schedule, tmp_path / "late", "t", average_from=7)
    torch.testing.assert_close(model.weight, snapshots[-1]["weight"])


def test_a_resumed_weight_averaging_equals_an_uninterrupted_one(tmp_path):
    model, loader, schedule, loss = _setup(epochs=6)
    fit(model, loss, loader, schedule, tmp_path / "whole", "t", average_from=2)
    whole = model.weight.clone()
    # stopped after epoch 4 (the average holds epochs 2-4), then resumed in a new process' objects
    model, loader, schedule, loss = _setup(epochs=4)
    fit(model, loss, loader, schedule, tmp_path / "cut", "t", average_from=2)
    model, loader, _, loss = _setup(epochs=6)
    history = fit(model, loss, loader, schedule.model_copy(update={"epochs": 6}), tmp_path / "cut", "t",
                  average_from=2)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    torch.testing.assert_close(model.weight, whole)


def _batchnorm_running_mean(tmp_path, epochs, average_from=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
    x = torch.randn(32, 2)
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8, generator=torch.Generator())
    schedule = ScheduleConfig(optimizer="sgd", lr=0.05, epochs=epochs, batch_size=8)
    fit(model, lambda b: torch.nn.functional.mse_loss(model(b[0]), b[1]), loader, schedule,
        tmp_path / f"{epochs}-{average_from}", "t", average_from=average_from)
    return model[1].running_mean


def test_weight_averaging_averages_batchnorm_statistics(tmp_path):
    after_2, after_3 = _batchnorm_running_mean(tmp_path, 2), _batchnorm_running_mean(tmp_path, 3)
    torch.testing.assert_close(_batchnorm_running_mean(tmp_path, 3, average_from=2), (after_2 + after_3) / 2)


def test_with_a_validation_the_best_epoch_wins_over_the_average(tmp_path):
    model, loader, schedule, loss = _setup(epochs=4)
    val = iter([3.0, 1.0, 2.0, 4.0])
    snapshots = []

    def validate():
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(val)

    fit(model, loss, loader, schedule, tmp_path, "t", validate=validate, average_from=1)
    torch.testing.assert_close(model.weight, snapshots[1]["weight"])


@pytest.mark.parametrize("kind", [dict(optimizer="adam", lr=0.01, weight_decay=0.001),
                                  dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.001)])
def test_the_optimizers_update_every_parameter_at_once_with_the_loops_bytes(kind):
    """make_optimizer's foreach updates (one call per arithmetic step for all parameters) give
    exactly the weights of PyTorch's per-parameter loop, step after step."""
    from gliotype.utils.training import make_optimizer

    schedule = ScheduleConfig(epochs=1, batch_size=8, **kind)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 1))
    twin = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 1))
    twin.load_state_dict(net.state_dict())
    ours = make_optimizer(net.parameters(), schedule)
    assert ours.defaults["foreach"] is True
    loop = (torch.optim.Adam(twin.parameters(), lr=0.01, weight_decay=0.001, foreach=False) if kind["optimizer"] == "adam"
            else torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, weight_decay=0.001, foreach=False))
    for step in range(5):
        x = torch.randn(8, 5)
        for model, opt in ((net, ours), (twin, loop)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        for a, b in zip(net.parameters(), twin.parameters()):
            assert torch.equal(a, b), step
