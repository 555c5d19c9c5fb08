"""Training checkpoints that cannot be read back (issue 14, "checkpoints"): a foreign pickle, a
truncated file, weights of an interrupted save. Each is set aside with a one-line warning
naming it, never unpickled, and the training starts again and ends as an uninterrupted one;
never torch's advice to load with ``weights_only=False``. Real files, a real (tiny) training."""

from __future__ import annotations

import logging
import pickle

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from gliotype.config.schema import ScheduleConfig
from gliotype.errors import GliotypeError
from gliotype.utils.training import fit
from gliotype.utils.weights import WeightsError, load_weights, save_weights

EPOCHS = 4


class WritesAMarker:
    """Unpickling this object would create the file ``path`` (``open(path, "w")``)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _setup(epochs=EPOCHS):
    """The same model (same initial weights), data and schedule every call."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8, shuffle=True,
                        generator=torch.Generator())
    schedule = ScheduleConfig(optimizer="adam", lr=0.01, epochs=epochs, lr_step_epochs=2, batch_size=8)
    return model, loader, schedule, lambda b: torch.nn.functional.mse_loss(model(b[0]), b[1])


def _train(folder, epochs=EPOCHS):
    model, loader, schedule, loss = _setup(epochs)
    history = fit(model, loss, loader, schedule, folder, "toy training", key="k")
    return model, history


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The weights and losses of an uninterrupted training."""
    model, history = _train(tmp_path_factory.mktemp("reference"))
    return model.state_dict(), [h["loss"] for h in history]


def _half_trained(tmp_path):
    """A checkpoint folder after 2 of the 4 epochs (as if interrupted there)."""
    folder = tmp_path / "ckpt"
    _train(folder, epochs=2)
    return folder


def _restarted(folder, reference, caplog):
    """Run the 4-epoch training on ``folder``: it must start again from epoch 1 and end as the reference."""
    with caplog.at_level(logging.INFO):
        model, history = _train(folder)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert [h["loss"] for h in history] == reference[1]
    for k, v in model.state_dict().items():
        assert torch.equal(v, reference[0][k]), k
    assert "resuming" not in caplog.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "weights_only" not in caplog.text and "torch.load" not in caplog.text  # torch's advice
    return warnings[0]


def test_a_sound_checkpoint_resumes(tmp_path, reference, caplog):
    folder = _half_trained(tmp_path)
    with caplog.at_level(logging.INFO):
        model, history = _train(folder)
    assert "resuming after epoch 2 of 4" in caplog.text
    assert [h["loss"] for h in history] == reference[1]
    assert all(torch.equal(v, reference[0][k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_foreign_pickle_as_state_pt_is_never_run_and_is_set_aside(tmp_path, reference, caplog, writer):
    folder = _half_trained(tmp_path)
    marker = tmp_path / "marker"
    evil = {"epoch": 2, "optimizer": WritesAMarker(marker), "scheduler": {}, "torch_rng": None}
    if writer == "torch.save":
        torch.save(evil, folder / "state.pt")
    else:
        (folder / "state.pt").write_bytes(pickle.dumps(evil, protocol=2))
    assert not marker.exists()
    warning = _restarted(folder, reference, caplog)
    assert not marker.exists()  # the pickle was never run
    assert "toy training: checkpoint file state.pt cannot be used" in warning and "epoch 1" in warning
    aside = sorted(p.name for p in folder.glob("state.pt.bad-*"))
    assert len(aside) == 1 and aside[0] in warning
    assert str(tmp_path) not in warning
    assert (folder / "state.pt").is_file()  # the new training's own checkpoint


def test_a_truncated_state_pt_is_set_aside_and_training_finishes(tmp_path, reference, caplog):
    folder = _half_trained(tmp_path)
    state = folder / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    warning = _restarted(folder, reference, caplog)
    assert "state.pt" in warning and list(folder.glob("state.pt.bad-*"))


def test_truncated_weights_are_set_aside(tmp_path, reference, caplog):
    folder = _half_trained(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    warning = _restarted(folder, reference, caplog)
    assert "model.safetensors cannot be used (truncated or not a safetensors file)" in warning
    assert list(folder.glob("model.safetensors.bad-*"))


def test_weights_of_an_interrupted_save_are_not_resumed(tmp_path, reference, caplog):
    """A save killed between the weights and state.pt leaves weights one epoch ahead of the
    optimiser state: resuming them would not equal an uninterrupted run."""
    folder = _half_trained(tmp_path)
    model, *_ = _setup()
    save_weights(model, folder / "model.safetensors")  # other weights, readable
    warning = _restarted(folder, reference, caplog)
    assert "model.safetensors cannot be used (not the weights state.pt was saved with" in warning


def test_a_checkpoint_failing_half_way_leaves_the_model_untouched(tmp_path, reference, caplog):
    """The weights load, then the history fails: the model gets its initial weights back, so the
    restarted training equals the reference (not a training from the checkpoint's weights)."""
    folder = _half_trained(tmp_path)
    (folder / "history.json").write_text("[{\"epoch\": 1")
    warning = _restarted(folder, reference, caplog)
    assert "history.json cannot be used" in warning


def test_a_checkpoint_of_an_earlier_version_still_resumes(tmp_path, reference, caplog):
    """state.pt written before it named its key and weights (no such entries) is resumed as before."""
    folder = _half_trained(tmp_path)
    state = torch.load(folder / "state.pt", weights_only=True)
    del state["key"], state["weights_sha256"]
    torch.save(state, folder / "state.pt")
    with caplog.at_level(logging.INFO):
        model, history = _train(folder)
    assert "resuming after epoch 2 of 4" in caplog.text
    assert [h["loss"] for h in history] == reference[1]


def test_unreadable_weights_files_give_one_line_naming_the_file(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "net" / "w.safetensors"
    save_weights(model, path)
    with pytest.raises(WeightsError, match="weights file net/w.safetensors does not fit this network"):
        load_weights(torch.nn.Linear(4, 2), path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(WeightsError) as err:
        load_weights(model, path)
    assert str(err.value) == "weights file net/w.safetensors is unreadable (truncated or not a safetensors file)"
    path.write_bytes(pickle.dumps({"weight": WritesAMarker(tmp_path / "marker")}))
    with pytest.raises(GliotypeError, match="net/w.safetensors is unreadable"):
        load_weights(model, path)
    assert not (tmp_path / "marker").exists()
    path.unlink()
    with pytest.raises(WeightsError, match="weights file net/w.safetensors is missing"):
        load_weights(model, path)


def test_a_truncated_cached_graph_row_is_trained_again(tmp_path, caplog):
    """population_graph/store.py: an unreadable cached row is a cache miss (a warning), not a crash."""
    import numpy as np

    from gliotype.layout import GraphRowDir
    from gliotype.population_graph.gnn import PopulationGNN
    from gliotype.population_graph.store import TrainedRow, load_row, save_row

    gnn = PopulationGNN(4, hidden=(8, 4))
    folder = GraphRowDir(tmp_path / "row")
    save_row(folder, "key", TrainedRow(gnn, np.zeros(3), None, np.arange(3), []))
    assert load_row(folder, "key") is not None
    folder.weights.write_bytes(folder.weights.read_bytes()[:50])
    with caplog.at_level(logging.WARNING):
        assert load_row(folder, "key") is None
    assert "population graph row: cached file gnn.safetensors changed since it was written" in caplog.text
