"""What the steps of one patient (:mod:`gliotype.preprocessing.case`) hand each other: the
context every step reads (:class:`CaseContext`), the patient on its native grid after
co-registration (:class:`NativeCase`) and on the template grid (:class:`TemplateCase`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from gliotype.input import InputRules, reference_sequence
from gliotype.preprocessing.images import inverse_order, reorder
from gliotype.preprocessing.outputs import SEQUENCES


@dataclass
class CaseContext:
    """What every step needs: the patient, its input files (by role), the ``preprocess``
    settings, the template, the log (``say``), the QC record the steps fill and the input
    rules (voxel limit, non-finite rule, missing sequences)."""

    pid: str
    inputs: dict[str, Path]
    cfg: Any
    template: Any
    say: Callable[..., None]
    qc: dict
    rules: InputRules = InputRules()

    @property
    def present(self) -> tuple[str, ...]:
        """The sequences the patient has, in :data:`SEQUENCES` order."""
        return tuple(s for s in SEQUENCES if s in self.inputs)

    @property
    def missing(self) -> tuple[str, ...]:
        """The sequences the patient lacks (zero volumes on the template grid), in :data:`SEQUENCES` order."""
        return tuple(s for s in SEQUENCES if s not in self.inputs)

    @property
    def reference(self) -> str:
        """The sequence whose grid is the native grid: t1c when present."""
        return reference_sequence(self.present)

    @property
    def moving(self) -> str:
        """The sequence registered to the template: ``preprocess.moving`` when present, else the reference."""
        return self.cfg.moving if self.cfg.moving in self.inputs else self.reference


@dataclass
class NativeCase:
    """The patient on its native grid (the T1c grid, or the reference sequence's), after co-registration."""

    ref: nib.Nifti1Image  # t1c (the reference sequence): the native grid
    images: dict[str, nib.Nifti1Image]  # role -> image on the native grid
    coregistration: dict[str, str | None]  # role -> rigid transform file name, None when not registered
    mask: np.ndarray  # uint8 labels
    tumor: np.ndarray  # mask > 0
    sequences: dict[str, np.ndarray]  # role -> float32 voxels, for the present SEQUENCES
    voxel_mm3: float
    on_template: bool  # the native grid is the template grid (in any voxel order): nothing to register
    template_order: np.ndarray | None = None  # native voxel order -> the template's (None: the same)

    def to_template_order(self, data: np.ndarray) -> np.ndarray:
        """A native-grid array of an ``on_template`` case as an array on the template grid (exact)."""
        return np.array(data) if self.template_order is None else reorder(data, self.template_order)

    def from_template_order(self, data: np.ndarray) -> np.ndarray:
        """A template-grid array on the native grid of an ``on_template`` case (exact)."""
        return np.array(data) if self.template_order is None else reorder(data, inverse_order(self.template_order))


@dataclass
class TemplateCase:
    """The patient on the template grid."""

    sequences: np.ndarray  # (4, X, Y, Z) float32 in SEQUENCES order
    mask: np.ndarray  # uint8 labels
    brain: np.ndarray  # bool
    fa: np.ndarray | None


__all__ = ["CaseContext", "NativeCase", "TemplateCase"]
