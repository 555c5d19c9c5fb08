"""Data-parallel training (``train.processes``): two real processes on the CPU (gloo) take the
steps one process takes on the same global batches.

Each test compares a two-process training with the one-process training of the same job:
loss curves within rtol 1e-4, weights within 1e-4 (float rounding of sums split over two
processes; a per-process loss, or batch norm over half the batch, differs by 1e-2). The
jobs are in ``ddp_jobs`` (module-level classes: the processes are spawned).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ddp_jobs
from gliotype.config import load_config
from gliotype.config.schema import TrainConfig
from gliotype.errors import GliotypeError
from gliotype.population_graph import train_population_gnn
from gliotype.population_graph.graph import PopulationGraph
from gliotype.utils import distributed

TESTS = Path(__file__).resolve().parents[1]


def _same_curves(one: list[dict], two: list[dict], *terms: str) -> None:
    assert [r["epoch"] for r in one] == [r["epoch"] for r in two]
    for term in ("loss", *terms):
        np.testing.assert_allclose([r[term] for r in two], [r[term] for r in one], rtol=1e-4, err_msg=term)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sb[k].float(), sa[k].float(), rtol=1e-4, atol=1e-5, msg=k)


def test_cnn_baseline_loss_in_two_processes_is_one_process(tmp_path):
    """The CNN baselines' BCE (with batch norm) through fit: batches of 5 cut 3 + 2, a last
    batch of 1 dropped; only the leading process writes the checkpoint and history.csv."""
    one, h1 = ddp_jobs.cnn_job(tmp_path / "one", None)
    two, h2 = ddp_jobs.cnn_job(tmp_path / "two", ddp_jobs.TWO)
    _same_curves(h1, h2)
    _same_weights(one, two)
    assert two.norm.running_var.ne(1).all()  # the parent's network got the trained weights
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(json.loads((tmp_path / "two" / "history.json").read_text())) == 3


def test_multimodal_loss_in_two_processes_is_the_global_batch_loss(tmp_path):
    """Eq. 7 + BCE of the tiny multi-modal network with rotations: the contrastive
    denominators run over the whole batch (gathered), the rotations are the global batch's."""
    one, h1 = ddp_jobs.multimodal_job(tmp_path / "one", None)
    two, h2 = ddp_jobs.multimodal_job(tmp_path / "two", ddp_jobs.TWO)
    _same_curves(h1, h2, "contrastive", "bce")
    _same_weights(one, two)


def _graph(n: int = 26, seed: int = 0) -> PopulationGraph:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    src, dst = torch.randint(0, n, (2, 4 * n), generator=g)
    keep = src != dst
    y = (x[:, 0] > 0).float()
    y[-6:] = -1.0  # test nodes
    return PopulationGraph(x, torch.stack([src[keep], dst[keep]]), torch.rand(int(keep.sum()), generator=g), y,
                           [f"P{i}" for i in range(n)])


def test_population_gnn_in_two_processes_is_one_process():
    """Steps of 5 labelled nodes (cut 3 + 2; the last step of 3: 2 + 1), dropout 0.3 (every
    process draws the one-process masks), validation nodes and the best epoch."""
    config = load_config("tiny").population_graph.model_copy(
        update={"gat": [8], "epochs": 4, "batch_size": 5, "dropout": 0.3, "lr": 0.02})
    graph, val = _graph(), np.array([0, 1, 2, 3])
    m1, h1 = train_population_gnn(graph, config, seed=3, val_nodes=val)
    m2, h2 = train_population_gnn(graph, config, seed=3, val_nodes=val, train=ddp_jobs.TWO)
    _same_curves(h1, h2, "val_loss")
    assert [r.get("best") for r in h1] == [r.get("best") for r in h2]
    _same_weights(m1, m2)


@pytest.mark.slow  # three trainings, two of them launched: ~20 s on two idle cores
def test_killed_two_process_training_resumes_to_the_uninterrupted_result(tmp_path):
    """kill -9 of the whole two-process training (the launcher and both processes) after a
    checkpoint: a new two-process run resumes from it and ends where one uninterrupted run ends."""
    epochs, folder = 16, tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)]),
           "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen([sys.executable, str(TESTS / "ddp_jobs.py"), str(folder), str(epochs)], env=env,
                           start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done, deadline = 0, time.monotonic() + 60
    try:
        while done < 2 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            if (folder / "state.pt").exists():
                done = torch.load(folder / "state.pt", weights_only=True)["epoch"]
    finally:
        os.killpg(job.pid, 9)
        job.wait()
    assert 2 <= done < epochs, f"the training was not stopped part-way (epoch {done} of {epochs})"
    resumed, h_resumed = ddp_jobs.cnn_job(folder, ddp_jobs.TWO, epochs=epochs)
    whole, h_whole = ddp_jobs.cnn_job(tmp_path / "whole", None, epochs=epochs)
    _same_curves(h_whole, h_resumed)
    _same_weights(whole, resumed)


@pytest.mark.slow  # two launchers meeting at one endpoint: ~20 s on two idle cores
def test_two_nodes_train_as_one_process(tmp_path):
    """``train.nodes: 2``: this process drives, a second "node" (here a second process on this
    host) runs ``gliotype train join`` at the same endpoint and gets the job from the leader."""
    from gliotype.utils.launch import free_port

    endpoint = f"127.0.0.1:{free_port()}"
    two_nodes = TrainConfig(processes=1, nodes=2, endpoint=endpoint, device="cpu", precision="32")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)]),
           "OMP_NUM_THREADS": "1"}
    node = subprocess.Popen([sys.executable, "-m", "gliotype", "train", "join", "--preset", "tiny", "--set",
                             "train.nodes=2", "--set", f"train.endpoint={endpoint}", "--wait", "0.02"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        two, h2 = ddp_jobs.cnn_job(tmp_path / "two", two_nodes)
        out, err = node.communicate(timeout=60)
    finally:
        node.kill()
    one, h1 = ddp_jobs.cnn_job(tmp_path / "one", None)
    _same_curves(h1, h2)
    _same_weights(one, two)
    assert node.returncode == 0 and "joined 1 training(s)" in out, err[-2000:]


def test_one_process_is_the_default_and_starts_none(tmp_path, monkeypatch):
    """``train.processes: 1`` (every preset) trains in this process, bit for bit the
    training without the option; only the precision reaches a cache key."""
    from gliotype.multimodal.stage import model_key
    from gliotype.utils import launch

    monkeypatch.setattr(launch, "launch", lambda *a, **k: pytest.fail("one process must not launch others"))
    plain, h_plain = ddp_jobs.cnn_job(tmp_path / "plain", None)
    one, h_one = ddp_jobs.cnn_job(tmp_path / "one", TrainConfig(processes=1, device="auto", precision="auto"))
    assert h_plain == [{**r, "seconds": p["seconds"]} for r, p in zip(h_one, h_plain)]
    for k, v in plain.state_dict().items():
        assert torch.equal(v, one.state_dict()[k]), k
    for preset in ("paper", "cpu", "tiny"):
        assert load_config(preset).train.processes == 1
    tiny = load_config("tiny")
    same = load_config("tiny", overrides=["train.processes=4", "train.device=auto", "train.backend=gloo"])
    mixed = load_config("tiny", overrides=["train.precision=bf16-mixed"])
    assert model_key(tmp_path, same, ["a"]) == model_key(tmp_path, tiny, ["a"])
    assert model_key(tmp_path, mixed, ["a"]) != model_key(tmp_path, tiny, ["a"])


def test_a_loss_error_in_the_processes_is_one_line(tmp_path):
    """A diverged loss in the training processes reaches the caller as the one-line error
    one process gives; a non-DataLoader loader is refused with one line."""
    generator = torch.Generator().manual_seed(0)
    model = ddp_jobs.TinyCnn()
    data = ddp_jobs.Volumes(6)
    data.x[0] = float("nan")
    from gliotype.evaluation.baselines import CnnLoss
    from gliotype.utils.training import fit, train_loader

    loader = train_loader(data, 6, generator)
    with pytest.raises(GliotypeError, match=r"^nan loss: the loss became nan in epoch 1; training diverged"):
        fit(model, CnnLoss(model), loader, ddp_jobs.schedule(1, 6), tmp_path, "nan loss", seed=0,
            train=ddp_jobs.TWO)
    with pytest.raises(GliotypeError, match="needs a torch DataLoader"):
        distributed.shard_loader([1, 2], distributed.Worker(0, 2, 0))


def test_device_and_precision(tmp_path):
    """auto is the CPU without a GPU, and float32 there; cuda without one is a one-line error;
    bf16-mixed on the CPU trains under autocast (other numbers, a cache key of its own)."""
    from gliotype.utils.devices import precision_key, resolve_device, resolve_precision

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: auto is cuda")
    auto = TrainConfig()
    assert resolve_device(auto).type == "cpu" and resolve_precision(auto) == "32" and precision_key(auto) == ""
    with pytest.raises(GliotypeError, match="^train.device is cuda but torch sees no GPU here"):
        resolve_device(TrainConfig(device="cuda"))
    with pytest.raises(GliotypeError, match="16-mixed needs a cuda device"):
        resolve_precision(TrainConfig(device="cpu", precision="16-mixed"))
    bf16 = TrainConfig(device="cpu", precision="bf16-mixed")
    assert precision_key(bf16) == "-bf16-mixed"
    _, h32 = ddp_jobs.cnn_job(tmp_path / "fp32", None)
    _, hbf = ddp_jobs.cnn_job(tmp_path / "bf16", bf16)
    losses32, lossesbf = np.array([r["loss"] for r in h32]), np.array([r["loss"] for r in hbf])
    assert not np.array_equal(losses32, lossesbf)
    np.testing.assert_allclose(lossesbf, losses32, rtol=1e-2)


def test_shards_cut_every_batch_into_near_equal_contiguous_slices():
    assert [distributed.shard_of(5, r, 2).within for r in (0, 1)] == [(0, 3, 5), (3, 5, 5)]
    assert [distributed.shard_of(7, r, 3).sizes for r in range(3)] == [(3, 2, 2)] * 3
    assert distributed.shard_of(1, 1, 2) == distributed.Shard(0, 1, 1, None)  # fewer items: each process all
