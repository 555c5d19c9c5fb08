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
SCHEDULER = typer.Option(None, "--scheduler", metavar="ADDRESS",
                         help="Run the per-patient stages on this Dask scheduler (e.g. tcp://host:8786) instead of "
                              "--workers local processes (executor.engine: dask; docs/scale-out.md).")
BIDS_DERIVATIVES = typer.Option(None, "--bids-derivatives", metavar="DIR",
                                help="BIDS input: the derivative dataset to write (default <BIDS root>/derivatives/gliotype).")
NO_BIDS_DERIVATIVES = typer.Option(False, "--no-bids-derivatives", help="BIDS input: write no derivative dataset.")
NODE_ATLAS = typer.Option(None, "--node-atlas", help="Your region labels (NIfTI).")
EDGE_ATLAS = typer.Option(None, "--edge-atlas", help="Your tracts: 4D NIfTI or folder.")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _bids_derivatives(folder: Optional[Path], off: bool):
    """The ``bids_derivatives`` argument of the API: False (off), a folder, or True (the default folder)."""
    if off and folder is not None:
        _fail("give --bids-derivatives DIR or --no-bids-derivatives, not both")
    return False if off else (folder if folder is not None else True)


def _config(preset: str, config: Optional[Path], set_: list[str], node_atlas: Optional[Path] = None,
            edge_atlas: Optional[Path] = None, skull_stripped: Optional[str] = None, max_voxels: Optional[int] = None,
            missing_sequences: Optional[int] = None, scheduler: Optional[str] = None):
    """The resolved configuration: the preset, the YAML file, the --set values, then the options."""
    from gliotype.config import load_config

    opts = {"preprocess.skull_stripped": skull_stripped, "atlas.node_atlas": node_atlas, "atlas.edge_atlas": edge_atlas,
            "input.max_voxels": max_voxels, "input.missing_sequences": missing_sequences,
            "executor.engine": "dask" if scheduler else None, "executor.scheduler": scheduler}
    extra = [f"{k}={json.dumps(str(v.resolve() if isinstance(v, Path) else v))}" for k, v in opts.items()
             if v is not None and v != ""]
    return load_config(preset, config, [*set_, *extra])  # quoted: `yes` stays a word, not YAML's true


__all__ = ["BIDS_DERIVATIVES", "CONFIG", "EDGE_ATLAS", "NODE_ATLAS", "NO_BIDS_DERIVATIVES", "PRESET", "SCHEDULER", "SET",
           "WORKERS", "_bids_derivatives", "_config", "_fail"]
