"""Training plumbing shared by every stage: optimisers, the step schedule, checkpoints.

"The learning rate is reduced to 90% after every 50 epochs" (section 4.3) is a
``StepLR(step_size=lr_step_epochs, gamma=lr_gamma)``. Checkpoints are written
atomically every epoch: weights as safetensors, optimiser/scheduler state loaded
with ``torch.load(weights_only=True)`` (no arbitrary unpickling). A checkpoint file that
cannot be read back (truncated, foreign, not the one its state names) is set aside with
a one-line warning and the training starts again (:meth:`Checkpointer.restore`); an
unreadable weights file elsewhere is one line naming it (:class:`WeightsError`), never
torch's or safetensors' own advice.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gliotype.config.schema import ScheduleConfig
from gliotype.errors import GliotypeError
from gliotype.utils.io import atomic_path, atomic_write, sha256_file
from gliotype.utils.logging import get_logger

log = get_logger(__name__)


class WeightsError(GliotypeError):
    """A weights file that cannot be read (truncated, not safetensors) or does not fit its network."""


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
    """Adam or SGD with the schedule's learning rate, weight decay and momentum."""
    if schedule.optimizer == "adam":
        return torch.optim.Adam(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    return torch.optim.SGD(params, lr=schedule.lr, weight_decay=schedule.weight_decay, momentum=schedule.momentum)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig):
    """lr x ``lr_gamma`` every ``lr_step_epochs`` epochs."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=schedule.lr_step_epochs, gamma=schedule.lr_gamma)


@dataclass
class Checkpoint:
    """A training state restored from disk."""

    epoch: int
    history: list[dict]


class Checkpointer:
    """Save and restore ``model + optimiser + scheduler + history`` in one folder.

    Files: ``model.safetensors`` (weights), ``state.pt`` (optimiser, scheduler, RNG, and the
    key and sha256 of the weights it goes with), ``history.json`` (one row per finished
    epoch), ``key.txt`` (what was being trained: config, patients, code version). Each is
    written atomically and ``state.pt`` last, so a checkpoint is complete when ``state.pt``
    exists and names the same weights and key. The folder holds one checkpoint, the last
    epoch's: a checkpoint of another key is never resumed (it is overwritten by the new
    training), and one that cannot be read back is set aside (:meth:`restore`), so the
    training starts again from epoch 1 (every epoch is a function of the seed and its
    number: the restarted training ends with the same weights).
    """

    def __init__(self, folder: str | Path, key: str = "", desc: str = "training"):
        self.folder = Path(folder)
        self.key = key
        self.desc = desc

    @property
    def weights(self) -> Path:
        return self.folder / "model.safetensors"

    @property
    def state(self) -> Path:
        return self.folder / "state.pt"

    @property
    def history(self) -> Path:
        return self.folder / "history.json"

    def save(self, epoch: int, model: nn.Module, optimizer, scheduler, history: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / "key.txt", self.key)
        save_weights(model, self.weights)
        atomic_write(self.history, json.dumps(history, indent=1))
        state = {
            "epoch": epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "key": self.key,
            "weights_sha256": sha256_file(self.weights),
        }
        with atomic_path(self.state) as tmp:
            torch.save(state, tmp)

    def restore(self, model: nn.Module, optimizer, scheduler) -> Checkpoint | None:
        """Load the last complete checkpoint into the objects; None when there is none.

        A checkpoint file that cannot be read back (``state.pt`` truncated or not written by
        gliotype, e.g. a pickle of other objects, which is never unpickled; weights truncated
        or not the ones ``state.pt`` names; an unreadable history) is renamed
        ``NAME.bad-<time>`` beside it with a one-line warning naming it, the objects are left
        as they were, and None is returned: the training starts again from epoch 1.
        """
        if not self.state.exists() or not self.weights.exists():
            return None
        key_file = self.folder / "key.txt"
        if (key_file.read_text() if key_file.exists() else "") != self.key:
            return None
        before = _snapshot(model, optimizer, scheduler)
        suspect = self.state
        try:
            state = _read_state(self.state)
            if state.get("key", self.key) != self.key:  # key.txt of a new training, state.pt of the old one
                return None
            suspect = self.weights
            tensors = read_weights(self.weights)
            if "weights_sha256" in state and sha256_file(self.weights) != state["weights_sha256"]:
                raise _Unusable("not the weights state.pt was saved with: an interrupted save")
            _load_state(model, tensors, self.weights)
            suspect = self.history
            history = json.loads(self.history.read_text())
            epoch = state["epoch"]
            if not isinstance(history, list) or len(history) < epoch:
                raise _Unusable("fewer epochs than state.pt names")
            suspect = self.state
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
        except Exception as exc:
            _roll_back(before, model, optimizer, scheduler)
            moved = _set_aside(suspect)
            log.warning("%s: checkpoint file %s cannot be used (%s); set aside as %s, training starts again "
                        "from epoch 1", self.desc, suspect.name, _reason(exc), moved.name)
            return None
        return Checkpoint(epoch=epoch, history=history[:epoch])


def _read_state(path: Path) -> dict:
    """``state.pt`` with ``torch.load(weights_only=True)``: tensors, numbers, strings and
    containers only, any other object is refused before it is built."""
    state = torch.load(path, weights_only=True)
    if (not isinstance(state, dict) or not {"epoch", "optimizer", "scheduler", "torch_rng"} <= set(state)
            or not isinstance(state["epoch"], int) or state["epoch"] < 0):
        raise _Unusable("not a gliotype training state")
    return state


class _Unusable(Exception):
    """A checkpoint file that reads but is not a usable part of this checkpoint."""


def _reason(exc: Exception) -> str:
    """Why a checkpoint file was refused, in our words: never torch's text, which advises
    ``weights_only=False`` for a file that is not a plain training state."""
    if isinstance(exc, _Unusable):
        return str(exc)
    if isinstance(exc, WeightsError):
        return "truncated or not a safetensors file" if "unreadable" in str(exc) else "does not fit this network"
    return f"truncated, or not written by gliotype: {type(exc).__name__}"


def _snapshot(model: nn.Module, optimizer, scheduler) -> tuple:
    return (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()),
            copy.deepcopy(scheduler.state_dict()), torch.get_rng_state())


def _roll_back(before: tuple, model: nn.Module, optimizer, scheduler) -> None:
    """The objects as they were before a checkpoint failed half-way into them."""
    weights, opt, sched, rng = before
    model.load_state_dict(weights)
    optimizer.load_state_dict(opt)
    scheduler.load_state_dict(sched)
    torch.set_rng_state(rng)


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to ``NAME.bad-<UTC time>`` beside it (kept for a look, never read again)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        target, n = path.with_name(f"{path.name}.bad-{stamp}-{n}"), n + 1
    path.replace(target)
    return target


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Weights (parameters and buffers) as safetensors, atomically."""
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def _label(path: str | Path) -> str:
    """A weights file as messages name it: its folder's name and its own, never the path above."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no pickle); :class:`WeightsError` in one line naming the
    file when it is missing, truncated or not safetensors."""
    if not Path(path).is_file():
        raise WeightsError(f"weights file {_label(path)} is missing")
    try:
        return load_file(str(path))
    except Exception:
        raise WeightsError(f"weights file {_label(path)} is unreadable (truncated or not a safetensors "
                           "file)") from None


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights (no pickle); shapes must match exactly (:class:`WeightsError` if not)."""
    return _load_state(model, read_weights(path), path)


def _load_state(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> nn.Module:
    try:
        model.load_state_dict(tensors)
    except RuntimeError:
        raise WeightsError(f"weights file {_label(path)} does not fit this network (other layers or "
                           "sizes)") from None
    return model


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
    """
    import time

    import pandas as pd

    from gliotype.utils.io import write_csv_atomic
    from gliotype.utils.progress import progress

    optimizer = make_optimizer(params if params is not None else model.parameters(), schedule)
    scheduler = make_scheduler(optimizer, schedule)
    ckpt = Checkpointer(folder, key, desc)
    best_path = Path(folder) / "best.safetensors"
    history: list[dict] = []
    start = 0
    if resume and (restored := ckpt.restore(model, optimizer, scheduler)) is not None:
        start, history = restored.epoch, restored.history
        if start < schedule.epochs and not _stopped_early(history, patience):
            log.info("%s: resuming after epoch %d of %d", desc, start, schedule.epochs)
    epochs = range(start, schedule.epochs) if not _stopped_early(history, patience) else range(0)
    for epoch in progress(epochs, desc, total=len(epochs), unit="epoch"):
        torch.manual_seed(seed + epoch)
        if getattr(loader, "generator", None) is not None:
            loader.generator.manual_seed(seed + epoch)
        for generator, base in streams:  # e.g. the augmentation: a function of (base, epoch) only
            generator.manual_seed(epoch_seed(base, epoch))
        model.train()
        t0, total, count, terms = time.perf_counter(), 0.0, 0, {}
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            result = batch_loss(batch)
            loss, parts = result if isinstance(result, tuple) else (result, {})
            if not torch.isfinite(loss):
                raise GliotypeError(f"{desc}: the loss became {float(loss.detach())} in epoch {epoch + 1}; training diverged "
                                    "(lower the learning rate of this stage with --set ...lr=)")
            loss.backward()
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
            row["val_loss"] = float(validate())
            if row["val_loss"] <= min([h.get("val_loss", float("inf")) for h in history], default=float("inf")):
                save_weights(model, best_path)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        ckpt.save(epoch + 1, model, optimizer, scheduler, history)
        write_csv_atomic(pd.DataFrame(history), Path(folder) / "history.csv")
        log.debug("%s epoch %d loss %.4f", desc, epoch + 1, row["loss"])
        if _stopped_early(history, patience):
            log.info("%s: early stop after epoch %d (no validation improvement in %d epochs)", desc, epoch + 1, patience)
            break
    if validate is not None and best_path.exists():
        load_weights(model, best_path)
    model.eval()
    return history


def _stopped_early(history: list[dict], patience: int | None) -> bool:
    """True when the last ``patience`` epochs did not improve the best validation loss."""
    if not patience or len(history) <= patience or "val_loss" not in history[-1]:
        return False
    losses = [h["val_loss"] for h in history]
    return min(losses[-patience:]) > min(losses[:-patience])
