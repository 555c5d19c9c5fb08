"""The base of every layout class: a frozen dataclass around a folder, path-like."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

_F = TypeVar("_F", bound="_Folder")


@dataclass(frozen=True)
class _Folder:
    """A folder of the layout: ``root`` and the named paths under it."""

    root: Path

    def __post_init__(self) -> None:
        if not isinstance(self.root, Path):
            object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def of(cls: type[_F], folder: str | os.PathLike | _F) -> _F:
        """``folder`` itself when it already is one, else the folder at that path."""
        return folder if isinstance(folder, cls) else cls(Path(folder))

    def __fspath__(self) -> str:
        return os.fspath(self.root)
