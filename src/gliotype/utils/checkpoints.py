"""Training checkpoints: ``model + optimiser + scheduler + history`` in one folder, every epoch.

Weights as safetensors, optimiser/scheduler state loaded with
``torch.load(weights_only=True)`` (no arbitrary unpickling). A checkpoint file that cannot
be read back (truncated, foreign, not the one its state names) is set aside with a one-line
warning and the training starts again (:meth:`Checkpointer.restore`).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gliotype.utils.io import atomic_path, atomic_write, sha256_file
from gliotype.utils.logging import get_logger
from gliotype.utils.weights import WeightsError, load_state, read_weights, save_weights

log = get_logger(__name__)


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
            load_state(model, tensors, self.weights)
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


__all__ = ["Checkpoint", "Checkpointer"]
