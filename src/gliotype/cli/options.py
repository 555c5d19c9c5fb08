"""What the commands share: their common options, the resolved configuration, the error exit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

PRESET = typer.Option("cpu", "--preset", help="paper, cpu or tiny.")
CONFIG = typer.Option(None, "--config", help="A YAML file over the preset.")
SET = typer.Option([], "--set", help="Override one value: key.path=value (repeatable).")
WORKERS = typer.Option(2, "--workers", help="Parallel processes.")
NODE_ATLAS = typer.Option(None, "--node-atlas", help="Your region labels (NIfTI).")
EDGE_ATLAS = typer.Option(None, "--edge-atlas", help="Your tracts: 4D NIfTI or folder.")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _config(preset: str, config: Optional[Path], set_: list[str], node_atlas: Optional[Path] = None,
            edge_atlas: Optional[Path] = None, skull_stripped: Optional[str] = None, max_voxels: Optional[int] = None,
            missing_sequences: Optional[int] = None):
    """The resolved configuration: the preset, the YAML file, the --set values, then the options."""
    from gliotype.config import load_config

    opts = {"preprocess.skull_stripped": skull_stripped, "atlas.node_atlas": node_atlas, "atlas.edge_atlas": edge_atlas,
            "input.max_voxels": max_voxels, "input.missing_sequences": missing_sequences}
    extra = [f"{k}={json.dumps(str(v.resolve() if isinstance(v, Path) else v))}" for k, v in opts.items()
             if v is not None and v != ""]
    return load_config(preset, config, [*set_, *extra])  # quoted: `yes` stays a word, not YAML's true


__all__ = ["CONFIG", "EDGE_ATLAS", "NODE_ATLAS", "PRESET", "SET", "WORKERS", "_config", "_fail"]
