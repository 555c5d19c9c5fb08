"""Training plumbing shared by every stage: seeds, loaders, optimisers, the step schedule, :func:`fit`.

"The learning rate is reduced to 90% after every 50 epochs" (section 4.3) is a
``StepLR(step_size=lr_step_epochs, gamma=lr_gamma)``. :func:`fit` writes a checkpoint
every epoch (:mod:`gliotype.utils.checkpoints`) and resumes from it; weights files are
:mod:`gliotype.utils.weights`. With ``train`` (the config's ``train`` section) it trains on a
GPU, in mixed precision (:mod:`gliotype.utils.devices`) or in several processes
(:mod:`gliotype.utils.launch`, :mod:`gliotype.utils.distributed`).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gliotype.config.schema import ScheduleConfig, TrainConfig
from gliotype.errors import GliotypeError
from gliotype.utils import distributed
from gliotype.utils.checkpoints import Checkpointer
from gliotype.utils.devices import autocast, grad_scaler, resolve_device, resolve_precision, to_device
from gliotype.utils.logging import get_logger
from gliotype.utils.weight_average import WeightAverage
from gliotype.utils.weights import load_weights, save_weights

log = get_logger(__name__)


class TrainingDiverged(GliotypeError):
    """The loss of a training became NaN or infinite (one line: the stage, the value, the epoch)."""


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (restored after).

    Many tiny operations (GNNExplainer's 200 steps on one brain network, the GNN on a
    population graph) run far faster on one thread: with two, every small matrix product
    pays the thread hand-over, which is 10-100 times the product itself on a busy machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch Generator for data loaders."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train_loader(dataset, batch_size: int, generator: torch.Generator, **kwargs) -> torch.utils.data.DataLoader:
    """Shuffled loader of batches of ``min(batch_size, len(dataset))``.

    A last batch of one sample is dropped: batch norm cannot train on it and a
    contrastive denominator over j != i is empty.
    """
    batch_size = max(1, min(batch_size, len(dataset)))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                                       drop_last=len(dataset) > batch_size and len(dataset) % batch_size == 1,
                                       **kwargs)


def make_optimizer(params, schedule: ScheduleConfig) -> torch.optim.Optimizer:
    """Adam or SGD with the schedule's learning rate, weight decay and momentum.

    Both update every parameter with one ``torch._foreach_*`` call per arithmetic step
    (``foreach=True``; PyTorch's default on the CPU is a Python loop over the parameters): the
    same operations in the same order, so the same bytes, without the loop's per-tensor
    overhead: 0.3 ms less in each ~10 ms step of the edge model, 1.2 ms in each ~15 ms step of the
    population GNN (one thread).
    """
    if schedule.optimizer == "adam":
        return torch.optim.Adam(params, lr=schedule.lr, weight_decay=schedule.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=schedule.lr, weight_decay=schedule.weight_decay, momentum=schedule.momentum,
                           foreach=True)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig):
    """lr x ``lr_gamma`` every ``lr_step_epochs`` epochs."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=schedule.lr_step_epochs, gamma=schedule.lr_gamma)


def epoch_seed(base: int, epoch: int) -> int:
    """The seed of a random stream in ``epoch`` (a function of the stream's base seed and the
    epoch only, so an epoch replays the same draws whether or not training was resumed)."""
    return int(np.random.SeedSequence([int(base) % 2**32, int(epoch)]).generate_state(1)[0])


def fit(
    model: nn.Module,
    batch_loss,
    loader,
    schedule: ScheduleConfig,
    folder: str | Path,
    desc: str,
    resume: bool = True,
    params=None,
    seed: int = 0,
    validate=None,
    patience: int | None = None,
    key: str = "",
    streams: Sequence[tuple[torch.Generator, int]] = (),
    train: TrainConfig | None = None,
    average_from: int | None = None,
) -> list[dict]:
    """Train ``model`` for ``schedule.epochs`` epochs with a checkpoint after each one.

    ``batch_loss(batch)`` returns a scalar tensor, or ``(tensor, {term: float})`` to log
    the loss terms. With ``resume`` the last complete checkpoint in ``folder`` is
    restored and training continues from the next epoch (a finished run returns its
    history without training). Each epoch reseeds torch and the loader's generator from
    ``seed + epoch``, and every other random stream of ``streams`` (``(generator, base
    seed)``, e.g. the augmentation's) from :func:`epoch_seed` of its base seed and the epoch,
    so a resumed run equals an uninterrupted one. ``key`` names what
    is trained (config, patients); a checkpoint written under another key is ignored.

    ``validate() -> float`` (a validation loss, lower is better) is called after every
    epoch; with ``patience`` training stops after that many epochs without improvement,
    and the best weights are restored. Returns one row per epoch: ``epoch, loss, lr,
    seconds`` (+ terms, ``val_loss``); also written to ``folder/history.csv``.

    ``train`` (None: one process on the CPU in float32, as before the option): the device
    and precision, and ``train.processes`` (x ``nodes``) > 1 trains in that many processes,
    each on a slice of every batch (``schedule.batch_size`` is the global batch), with the
    gradients averaged: the loss curve of one process within float rounding when
    ``batch_loss`` computes its loss on :func:`gliotype.utils.distributed.gather`-ed outputs
    (then ``model``, ``batch_loss``, ``loader`` and ``validate`` must be picklable: module-level
    classes, no closures). Only the leading process writes files; ``model`` gets its weights.

    ``average_from`` k (None: the last epoch's weights): ``model`` ends with the equal average of its
    weights after epochs k to the last (:class:`~gliotype.utils.weight_average.WeightAverage`, kept in
    the checkpoint); with ``validate`` the best epoch's weights are kept instead.
    """
    from gliotype.utils.launch import launch, spans_processes

    if spans_processes(train):
        args = (model, batch_loss, loader, schedule, folder, desc, resume, None if params is None else list(params),
                seed, validate, patience, key, tuple(streams), train, average_from)
        history, state, rng = launch(_fit_process, args, train, desc)
        model.load_state_dict(state)
        torch.set_rng_state(rng)
        return history
    return _fit(model, batch_loss, loader, schedule, folder, desc, resume, params, seed, validate, patience, key,
                streams, train, average_from)


def _fit_process(*args) -> tuple[list[dict], dict, torch.Tensor]:
    """:func:`fit` in one process of a data-parallel training: the history, the weights (CPU)
    and the torch RNG state after it."""
    model = args[0]
    history = _fit(*args)
    return history, {k: v.detach().cpu() for k, v in model.state_dict().items()}, torch.get_rng_state()


def _fit(model, batch_loss, loader, schedule, folder, desc, resume, params, seed, validate, patience, key, streams,
         train, average_from=None) -> list[dict]:
    import pandas as pd

    from gliotype.utils.io import write_csv_atomic
    from gliotype.utils.progress import EpochLog, progress

    group = distributed.worker()
    leader = group is None or group.is_leader
    device = resolve_device(train) if train is not None else torch.device("cpu")
    precision = resolve_precision(train, device) if train is not None else "32"
    on_cpu = device.type == "cpu"
    if not on_cpu:
        model.to(device)
    if group is not None:
        distributed.gather_batchnorm(model)
        loader = distributed.shard_loader(loader, group)
    optimizer = make_optimizer(params if params is not None else model.parameters(), schedule)
    scheduler = make_scheduler(optimizer, schedule)
    scaler = grad_scaler(precision, device)
    ckpt = Checkpointer(folder, key, desc)
    average = WeightAverage.of(model, average_from if validate is None else None)
    tracked = model if average is None else average.tracked  # what a checkpoint holds
    best_path = Path(folder) / "best.safetensors"
    history: list[dict] = []
    start = 0
    restored = ckpt.restore(tracked, optimizer, scheduler) if resume and leader else None
    if resume and group is not None:  # the leader has set aside what cannot be read; the others read the same
        distributed.barrier()
        if not leader:
            restored = ckpt.restore(tracked, optimizer, scheduler)
    if restored is not None:
        start, history = restored.epoch, restored.history
        if start < schedule.epochs and not _stopped_early(history, patience) and leader:
            log.info("%s: resuming after epoch %d of %d", desc, start, schedule.epochs)
    epochs = range(start, schedule.epochs) if not _stopped_early(history, patience) else range(0)
    lines = EpochLog(desc, schedule.epochs, start) if len(epochs) and leader else None
    for epoch in progress(epochs, desc, total=len(epochs), unit="epoch", lines=False):
        torch.manual_seed(seed + epoch)
        if getattr(loader, "generator", None) is not None:
            loader.generator.manual_seed(seed + epoch)
        for generator, base in streams:  # e.g. the augmentation: a function of (base, epoch) only
            generator.manual_seed(epoch_seed(base, epoch))
        model.train()
        t0, total, count, terms = time.perf_counter(), 0.0, 0, {}
        for batch in loader:
            shard = None
            if group is not None:
                batch, shard = batch
            optimizer.zero_grad(set_to_none=True)
            with distributed.step(shard):
                with autocast(precision, device):
                    result = batch_loss(batch if on_cpu else to_device(batch, device))
                loss, parts = result if isinstance(result, tuple) else (result, {})
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"{desc}: the loss became {float(loss.detach())} in epoch {epoch + 1}; training "
                                        "diverged (lower the learning rate of this stage with --set ...lr=)")
                (scaler.scale(loss) if scaler is not None else loss).backward()
            if group is not None:
                distributed.average_gradients(p for g in optimizer.param_groups for p in g["params"])
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            total += float(loss.detach())
            count += 1
            for k, v in parts.items():
                terms[k] = terms.get(k, 0.0) + v
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        row = {"epoch": epoch + 1, "loss": total / max(count, 1), "lr": lr}
        row.update({k: v / max(count, 1) for k, v in terms.items()})
        if validate is not None:
            model.eval()
            row["val_loss"] = float(validate()) if group is None else distributed.broadcast_float(
                validate() if leader else None)
            if (row["val_loss"] <= min([h.get("val_loss", float("inf")) for h in history], default=float("inf"))
                    and leader):
                save_weights(model, best_path)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        if average is not None:
            average.after_epoch(model, epoch + 1)
        if leader:
            ckpt.save(epoch + 1, tracked, optimizer, scheduler, history)
            write_csv_atomic(pd.DataFrame(history), Path(folder) / "history.csv")
            lines.epoch(epoch + 1, row["loss"], **({"val_loss": row["val_loss"]} if "val_loss" in row else {}))
        if _stopped_early(history, patience):
            if leader:
                log.info("%s: early stop after epoch %d (no validation improvement in %d epochs)", desc, epoch + 1,
                         patience)
            break
    if validate is not None and best_path.exists() and leader:
        load_weights(model, best_path)
    if average is not None:
        average.copy_to(model)
    model.eval()
    if not on_cpu:
        model.to("cpu")  # handed back where the caller built it
    return history


def _stopped_early(history: list[dict], patience: int | None) -> bool:
    """True when the last ``patience`` epochs did not improve the best validation loss."""
    if not patience or len(history) <= patience or "val_loss" not in history[-1]:
        return False
    losses = [h["val_loss"] for h in history]
    return min(losses[-patience:]) > min(losses[:-patience])


__all__ = ["TrainingDiverged", "epoch_seed", "fit", "make_optimizer", "make_scheduler", "seed_everything", "torch_threads",
           "train_loader"]
