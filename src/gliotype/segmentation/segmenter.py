"""A tumour-segmentation model the user has (``--segmenter PATH``): the interface and loading by folder type.

:func:`load_segmenter` tells the folder's type from its files and returns a
:class:`Segmenter`:

- a MONAI bundle (:mod:`gliotype.segmentation.monai_bundle`): ``configs/inference.json``
  (``.yaml``) or ``configs/metadata.json``, and ``models/model.pt`` (a state dict),
  ``models/model.safetensors`` or ``models/model.ts`` (TorchScript);
- an nnU-Net v2 trained-model folder (:mod:`gliotype.segmentation.nnunet`):
  ``dataset.json``, ``plans.json`` and ``fold_X/checkpoint_final.pth``.

A :class:`Segmenter` takes the sequences stacked in its channel order on one grid (the
patient's T1c grid, :func:`gliotype.segmentation.case.segment_case` puts them there) and
returns a BraTS label map on that grid. What it must know of its model (channels, output,
preprocessing, window) is its :class:`~gliotype.segmentation.spec.SegmenterSpec`. Every
problem of the folder is one line naming the folder (its name only) and the problem.
"""

from __future__ import annotations

import json

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from gliotype.errors import GliotypeError
from gliotype.segmentation.spec import SegmenterSpec
from gliotype.utils.io import sha256_file


class SegmenterError(GliotypeError):
    """A segmenter folder that cannot be used: names the folder (its name only) and the problem."""


class Segmenter(ABC):
    """A loaded segmentation model: :meth:`segment` one case's stacked sequences into BraTS labels."""

    #: ``monai-bundle`` or ``nnunet``
    kind: str = ""

    def __init__(self, folder: Path, spec: SegmenterSpec):
        self.folder = Path(folder)
        self.spec = spec

    # subclasses set ``self.label`` (the folder's name) first: their errors name it while reading the folder

    def _fail(self, problem: str) -> SegmenterError:
        """One line naming the segmenter (its folder's name only) and the problem."""
        return SegmenterError(f"segmenter {self.label}: {problem}")

    def _read_json(self, path: Path, shown: str, object_only: bool = True) -> dict:
        """A JSON file of the model folder as a dict; unreadable is a one-line error naming ``shown``, and so
        is a value that is not an object (``object_only``; else it reads as ``{}``)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise self._fail(f"{shown} is not readable JSON ({type(exc).__name__})") from None
        if isinstance(data, dict):
            return data
        if object_only:
            raise self._fail(f"{shown} is not a JSON object")
        return {}

    @property
    def name(self) -> str:
        """The folder's name: the only part of its path written in outputs."""
        return self.folder.resolve().name

    @property
    def inputs(self) -> tuple[str, ...]:
        """The sequences of its input channels, in order (``t1c``, ``t1``, ``t2``, ``flair``...)."""
        return self.spec.inputs

    @abstractmethod
    def segment(self, image: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """BraTS labels (uint8, X x Y x Z) of ``image`` (C x X x Y x Z float32, channels as :attr:`inputs`)
        on the grid ``affine`` (voxel to world, RAS mm)."""

    def model_files(self) -> list[Path]:
        """The files that make the model (what :meth:`fingerprint` hashes): by default every file of the folder."""
        return [p for p in self.folder.rglob("*") if p.is_file()]

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the model's files, their names relative to the folder and their bytes."""
        h = hashlib.sha256()
        for path in sorted(self.model_files()):
            h.update(path.relative_to(self.folder).as_posix().encode())
            h.update(sha256_file(path).encode())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        """What ``prediction.json`` and the cohort table say of it (no path: the folder's name)."""
        return {"segmenter": self.name, "kind": self.kind, "inputs": list(self.inputs), "output": self.spec.output}


def segmenter_kind(folder: Path) -> str | None:
    """``monai-bundle``, ``nnunet`` or None, from the files of ``folder``."""
    from gliotype.segmentation.monai_bundle import is_monai_bundle
    from gliotype.segmentation.nnunet import is_nnunet_folder

    if is_monai_bundle(folder):
        return "monai-bundle"
    if is_nnunet_folder(folder):
        return "nnunet"
    return None


def load_segmenter(path: str | Path) -> Segmenter:
    """The segmenter of a MONAI bundle or nnU-Net v2 folder; :class:`SegmenterError` (one line) otherwise."""
    folder = Path(path)
    name = folder.resolve().name or str(folder)
    if not folder.exists():
        raise SegmenterError(f"--segmenter {name}: not found")
    if not folder.is_dir():
        raise SegmenterError(f"--segmenter {name}: not a folder (give the model's folder: a MONAI bundle or an "
                             "nnU-Net v2 trained-model folder)")
    kind = segmenter_kind(folder)
    if kind == "monai-bundle":
        from gliotype.segmentation.monai_bundle import MonaiBundle

        return MonaiBundle(folder)
    if kind == "nnunet":
        from gliotype.segmentation.nnunet import NnUNetFolder

        return NnUNetFolder(folder)
    raise SegmenterError(f"--segmenter {name}: neither a MONAI bundle (configs/inference.json or "
                         "configs/metadata.json, and models/model.pt) nor an nnU-Net v2 trained-model folder "
                         "(dataset.json, plans.json, fold_X/checkpoint_final.pth)")


__all__ = ["Segmenter", "SegmenterError", "load_segmenter", "segmenter_kind"]
