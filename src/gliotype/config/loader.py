"""Load a preset, a user YAML and ``--set key=value`` overrides into a GliotypeConfig, and hash it.

:func:`load_config` resolves preset <- YAML <- overrides; :func:`config_hash` and
:func:`values_hash` are the keys of every cached stage. What a hash leaves out:
:data:`NEUTRAL_OPTIONS` at their neutral value (options added later) and
:data:`LOCATION_OPTIONS` whatever their value (they say where files go or where work runs, not
what is computed).
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gliotype.config.schema import GliotypeConfig
from gliotype.errors import GliotypeError, validation_problem
from gliotype.utils.io import atomic_write

PRESETS = ("paper", "cpu", "tiny")


def _preset_dict(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise GliotypeError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    text = resources.files("gliotype.config.presets").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(item: str) -> dict[str, Any]:
    """``"ssl.node.train.epochs=5"`` -> ``{"ssl": {"node": {"train": {"epochs": 5}}}}`` (value parsed as YAML)."""
    if "=" not in item:
        raise GliotypeError(f"override '{item}' is not of the form key.path=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise GliotypeError(f"override '{item}' has an empty key")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


def load_config(
    preset: str = "cpu",
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> GliotypeConfig:
    """Resolve preset <- YAML file <- overrides, validated; errors are one line."""
    data = _deep_merge(GliotypeConfig().model_dump(mode="json"), _preset_dict(preset))
    data["preset"] = preset
    if config_file is not None:
        path = Path(config_file)
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise GliotypeError(f"config file {path.name}: cannot read it ({type(exc).__name__})") from None
        if not isinstance(user, dict):
            raise GliotypeError(f"config file {path.name}: expected a mapping at the top level")
        data = _deep_merge(data, user)
    for item in overrides or []:
        data = _deep_merge(data, parse_override(item))
    try:
        return GliotypeConfig.model_validate(data)
    except ValidationError as exc:
        raise GliotypeError(f"config: {validation_problem(exc)}") from None


#: Options added after work folders were cached, each with the value that reproduces what
#: was computed before it existed. While a config holds that value the option is left out
#: of every hash, so adding an option never invalidates a cached stage; any other value is
#: hashed as usual. An option belongs here only if its neutral value is exactly the old
#: behaviour.
NEUTRAL_OPTIONS: dict[str, object] = {
    "modalities.image_label_channels": False,
    "multimodal.image.pool": "max",
    "multimodal.image.compartment_weight": 0.0,
    "multimodal.image.pretrain_epochs": 0,
    "multimodal.image.pretrain_lr": 1e-3,
    "multimodal.unlabelled": "none",
    "multimodal.contrastive.weight": 1.0,
    # before it, non-finite voxels were set to 0; "reject" gives the same outputs for every
    # patient it accepts (a patient with such voxels now fails instead of being repaired)
    "preprocess.nonfinite": "reject",
    # missing sequences (docs/design.md point 37): 0 = all four required, as before
    "input.missing_sequences": 0,
    "ssl.sequence_dropout": 0.0,
    "multimodal.sequence_dropout": 0.0,
    "multimodal.average_from_epoch": None,
    "population_graph.phenotype": "none",
    "population_graph.threshold_transfer": "value",
    # torch threads per process (issue 17): before it, torch's own default (the machine's cores)
    "threads": 1,
    # large population graphs (docs/scale-out.md): every eq. 8 pair, one full-graph forward per step
    "population_graph.neighbours": "exact",
    "population_graph.max_neighbours": 0,
    "population_graph.candidates": 0,
    "population_graph.sampling": "full",
    "population_graph.fanout": [],
}


#: Options that say where files are kept or where a computation runs, not what is computed:
#: left out of every hash whatever their value, so moving a cache never invalidates a stage,
#: nor does training on more processes or on a GPU (the same losses within float rounding,
#: docs/design.md point 45; ``train.precision`` is hashed: it changes the numbers).
#: ``executor``: the per-patient stages on local processes or a Dask cluster (docs/scale-out.md).
LOCATION_OPTIONS: tuple[str, ...] = ("atlas.cache_dir", "train.processes", "train.nodes", "train.endpoint",
                                     "train.backend", "train.device", "executor")


def hashed_values(data: dict) -> dict:
    """``data`` (plain config values) without the :data:`NEUTRAL_OPTIONS` that hold their neutral
    value and without the :data:`LOCATION_OPTIONS`."""
    data = copy.deepcopy(data)
    for dotted in (*NEUTRAL_OPTIONS, *LOCATION_OPTIONS):
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        if dotted in LOCATION_OPTIONS or node[leaf] == NEUTRAL_OPTIONS[dotted]:
            del node[leaf]
    return data


def values_hash(data: dict) -> str:
    """A short stable hash of plain config values (as dumped to JSON / YAML); options at their
    neutral value (:data:`NEUTRAL_OPTIONS`) and location options (:data:`LOCATION_OPTIONS`) do not count."""
    return hashlib.sha256(json.dumps(hashed_values(data), sort_keys=True).encode()).hexdigest()[:16]


def config_hash(config: GliotypeConfig, *sections: str) -> str:
    """A short stable hash of the whole config or of some sections (for caching)."""
    data = config.model_dump(mode="json")
    if sections:
        data = {s: data[s] for s in sections}
    return values_hash(data)


def save_config(config: GliotypeConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML next to an output (atomic)."""
    path = Path(path)
    atomic_write(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path
