"""What gliotype must know of a segmentation model, written explicitly: its input channels
(which sequence is channel 0, 1...), its kind of output and how that becomes BraTS labels,
its preprocessing and its sliding window.

A model folder says it in ``gliotype_segmenter.json`` (or ``.yaml``) beside its own files;
where that file is absent, the loader reads it from the model's own metadata (a MONAI
bundle's ``network_data_format``, an nnU-Net ``dataset.json``) and refuses, in one line,
a model whose metadata does not say it. Example, for MONAI's BraTS bundle::

    {"inputs": ["t1c", "t1", "t2", "flair"],
     "output": "regions", "channels": ["TC", "WT", "ET"], "threshold": 0.5,
     "roi_size": [240, 240, 160], "overlap": 0.5}

Keys (all optional but ``inputs`` and ``output``):

- ``inputs``: the sequences in channel order, each one of ``t1``, ``t1c``, ``t2``, ``flair``;
- ``output``: ``regions`` (sigmoid channels of nested regions: ``channels``, a permutation
  of ``TC``, ``WT``, ``ET``; ``threshold``) or ``labels`` (softmax channels, or an nnU-Net
  label map: ``labels``, the BraTS label of channel / label 0, 1, 2...); see
  :mod:`gliotype.segmentation.labels`;
- ``enhancing_label``: the label written for enhancing tumour, 4 (BraTS 2018-2021) or 3 (2023);
- ``preprocessing``: ``auto`` (the bundle's own preprocessing when its config declares one,
  else ``zscore``), ``bundle`` or ``zscore`` (each channel z-scored over its non-zero voxels);
- ``roi_size``, ``overlap``, ``sw_batch_size``: the sliding window (default: the bundle's
  ``inferer``, else 128 x 128 x 128, 0.25, 1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gliotype.errors import GliotypeError, validation_problem
from gliotype.input import SEQUENCES
from gliotype.segmentation.labels import REGIONS, region_of

#: The file of a model folder that says what gliotype must know (first found wins).
SPEC_FILES = ("gliotype_segmenter.json", "gliotype_segmenter.yaml", "gliotype_segmenter.yml")

#: Names models give their input channels (lower case, spaces, _ and - removed) -> gliotype's roles.
_ROLE_NAMES = {
    "t1c": ("t1c", "t1ce", "t1gd", "t1contrast", "t1post", "t1postcontrast", "postcontrastt1", "t1wce", "t1cemr"),
    "t1": ("t1", "t1n", "t1w", "t1native", "t1pre", "t1precontrast", "precontrastt1"),
    "t2": ("t2", "t2w", "t2weighted"),
    "flair": ("flair", "t2flair", "t2f", "flairmr"),
}


def role_of(name: str) -> str | None:
    """gliotype's role (``t1``, ``t1c``, ``t2``, ``flair``) of a channel name a model gives (``T1c``,
    ``T1ce``, ``T2-FLAIR``...), else None."""
    n = re.sub(r"[\s_\-]+", "", str(name).strip().lower())
    for role, names in _ROLE_NAMES.items():
        if n in names:
            return role
    return None


class SegmenterSpec(BaseModel):
    """The explicit description of a segmentation model (module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[str, ...]
    output: Literal["regions", "labels"]
    channels: Optional[tuple[str, ...]] = None
    labels: Optional[tuple[int, ...]] = None
    threshold: float = Field(0.5, gt=0, lt=1)
    enhancing_label: Literal[3, 4] = 4
    preprocessing: Literal["auto", "bundle", "zscore"] = "auto"
    roi_size: Optional[tuple[int, int, int]] = None
    overlap: Optional[float] = Field(None, ge=0, lt=1)
    sw_batch_size: Optional[int] = Field(None, ge=1)

    @field_validator("inputs")
    @classmethod
    def _roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        roles = tuple(role_of(r) or r for r in value)
        bad = [r for r in roles if r not in SEQUENCES]
        if bad:
            raise ValueError(f"{bad[0]!r} is not one of {', '.join(SEQUENCES)}")
        if len(set(roles)) != len(roles):
            raise ValueError("a sequence is given twice")
        return roles

    @field_validator("channels")
    @classmethod
    def _regions(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        names = [region_of(c) for c in value]
        if None in names or sorted(names) != sorted(REGIONS):
            raise ValueError(f"need the three regions TC, WT, ET in channel order, got {list(value)}")
        return tuple(names)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        bad = [v for v in value or () if v not in (0, 1, 2, 3, 4)]
        if bad:
            raise ValueError(f"{bad[0]} is not a BraTS label (0, 1, 2, 3, 4)")
        return value

    @field_validator("roi_size")
    @classmethod
    def _roi(cls, value: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if value is not None and min(value) < 1:
            raise ValueError("every side must be at least 1 voxel")
        return value

    @model_validator(mode="after")
    def _output(self) -> "SegmenterSpec":
        if self.output == "regions" and self.channels is None:
            raise ValueError("output 'regions' needs 'channels': the regions TC, WT, ET in channel order")
        if self.output == "labels" and not self.labels:
            raise ValueError("output 'labels' needs 'labels': the BraTS label of channel 0, 1, 2...")
        return self

    @property
    def out_channels(self) -> int:
        return len(self.channels) if self.output == "regions" else len(self.labels or ())


def make_spec(values: dict, source: str) -> SegmenterSpec:
    """A :class:`SegmenterSpec` of ``values``; one-line :class:`GliotypeError` naming ``source`` when invalid."""
    try:
        return SegmenterSpec(**values)
    except ValidationError as exc:
        raise GliotypeError(f"{source}: {validation_problem(exc)}") from None
    except TypeError as exc:
        raise GliotypeError(f"{source}: {exc}") from None


def read_spec(folder: Path) -> dict | None:
    """The content of the folder's ``gliotype_segmenter.json|yaml|yml`` (a dict), None when absent."""
    for name in SPEC_FILES:
        path = Path(folder) / name
        if not path.is_file():
            continue
        try:
            text = path.read_text()
            data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise GliotypeError(f"segmenter {Path(folder).name}: {name} is not readable "
                                f"({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise GliotypeError(f"segmenter {Path(folder).name}: {name} must hold a mapping of keys to values")
        return data
    return None


__all__ = ["SPEC_FILES", "SegmenterSpec", "make_spec", "read_spec", "role_of"]
