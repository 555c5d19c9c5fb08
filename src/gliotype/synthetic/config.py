"""Arguments of the synthetic cohort generator (``gliotype synth``), validated once."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gliotype.errors import GliotypeError

#: The IDH signals, each with its own strength knob (docs/synthetic.md).
SIGNALS: tuple[str, ...] = ("image", "shape", "location", "network")
DEFAULT_SIGNAL: dict[str, float] = {k: 1.0 for k in SIGNALS}
#: The location knob mixes two probabilities; above this value one of them would leave (0, 1).
MAX_LOCATION_KNOB = 2.0

#: Bumped whenever the same config would produce different files. 2: the network latent's
#: brain-wide white-matter change is replaced by disrupted paths leaving the lesion. 3: the
#: smooth fields are zoomed axis by axis (``fields.cubic_zoom``; 1 ulp off ``ndimage.zoom`` rarely)
#: and the files gzip-ed at level 1 (the same voxels, other bytes than level 6).
GENERATOR_VERSION = 3

_ID_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


def _check_signal(values: dict) -> dict[str, float]:
    """Merge ``values`` over the defaults; reject unknown keys and bad strengths."""
    out = dict(DEFAULT_SIGNAL)
    for key, value in values.items():
        if key not in SIGNALS:
            raise ValueError(f"unknown signal {key!r}; known signals: {', '.join(SIGNALS)}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"signal {key!r} must be a number, got {value!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"signal {key!r} must be a finite number >= 0, got {value}")
        if key == "location" and value > MAX_LOCATION_KNOB:
            raise ValueError(f"signal 'location' must be <= {MAX_LOCATION_KNOB}, got {value}")
        out[key] = value
    return out


def parse_signal(text: str) -> dict[str, float]:
    """Parse ``"image=1,shape=0.5"`` into a dict merged over the defaults (all 1).

    Raises ``ValueError`` naming the bad item (unknown key, missing ``=``, not a number).
    """
    values: dict[str, float] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"bad --signal item {item!r}: expected name=value, e.g. image=1,shape=0.5")
        key, _, value = item.partition("=")
        key = key.strip()
        try:
            values[key] = float(value)
        except ValueError:
            raise ValueError(f"bad --signal value for {key!r}: {value.strip()!r} is not a number") from None
    return _check_signal(values)


class SynthConfigError(GliotypeError, ValueError):
    """A bad generator argument, in one line naming the field (the CLI prints the first line)."""


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    msg = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"synth: {where}: {msg}{more}"


class SynthConfig(BaseModel):
    """Everything that determines a synthetic cohort (``workers`` only changes the speed).

    Bad values raise ``SynthConfigError`` (a ``ValueError`` and a ``GliotypeError``) whose
    one-line message names the field, e.g. ``synth: space: Input should be 'mni' or 'native'``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data):
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SynthConfigError(_describe(exc)) from None

    patients: int = Field(150, description="number of patients")
    seed: int = Field(0, description="random seed; same config, byte-identical files")
    prevalence: float = Field(0.26, description="P(IDH mutant); paper: 105 of 407")
    signal: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SIGNAL))
    sites: int = 3
    fa_cases: int = 20
    space: Literal["mni", "native"] = "mni"
    resolution: int = 2
    workers: int = 2
    id_prefix: str = "SYN"

    @field_validator("patients")
    @classmethod
    def _patients(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"patients must be >= 1, got {v}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"seed must be >= 0, got {v}")
        return v

    @field_validator("prevalence")
    @classmethod
    def _prevalence(cls, v: float) -> float:
        if not (0.0 < v < 1.0):
            raise ValueError(f"prevalence must be strictly between 0 and 1, got {v}")
        return v

    @field_validator("signal", mode="before")
    @classmethod
    def _signal(cls, v):
        if isinstance(v, str):
            return parse_signal(v)
        if not isinstance(v, dict):
            raise ValueError(f"signal must be a dict or 'name=value,...' text, got {type(v).__name__}")
        return _check_signal(v)

    @field_validator("sites")
    @classmethod
    def _sites(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"sites must be >= 1, got {v}")
        return v

    @field_validator("fa_cases")
    @classmethod
    def _fa(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"fa_cases must be >= 0, got {v}")
        return v

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, v: int) -> int:
        if v not in (1, 2):
            raise ValueError(f"resolution must be 1 or 2 (mm), got {v}")
        return v

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"workers must be >= 1, got {v}")
        return v

    @field_validator("id_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _ID_PREFIX.match(v):
            raise ValueError(f"id_prefix must be 1-32 letters, digits, '-' or '_' (starting alphanumeric), got {v!r}")
        return v

    @model_validator(mode="after")
    def _order(self):
        # dict order is part of the resolved config that is written to disk
        object.__setattr__(self, "signal", {k: float(self.signal[k]) for k in SIGNALS})
        return self

    @property
    def n_fa(self) -> int:
        """FA cases actually drawn: ``fa_cases`` capped at ``patients``."""
        return min(self.fa_cases, self.patients)

    def output_fields(self) -> dict:
        """The fields that determine the files (everything but ``workers``)."""
        d = self.model_dump()
        d.pop("workers")
        return d

    def patient_ids(self) -> list[str]:
        width = max(4, len(str(self.patients - 1)))
        return [f"{self.id_prefix}-{i:0{width}d}" for i in range(self.patients)]
