"""The software a run's numbers were computed with, for ``summary.json``.

The encoders are sensitive to float rounding (docs/results.md, "A fresh machine"): another
release of torch, PyG or scikit-learn can move a split's AUC by a few hundredths, so a run
records the versions of what computes its numbers (never a path or a host name), and
``make install`` installs the tested versions (``constraints.txt``).
"""

from __future__ import annotations

import platform
from importlib import metadata

#: distributions whose arithmetic reaches a table (PyPI names)
PACKAGES = ("torch", "torch_geometric", "monai", "numpy", "scipy", "scikit-learn", "antspyx", "SimpleITK",
            "nibabel", "pyradiomics-bhklab", "fpsample", "faiss-cpu")


def package_versions() -> dict[str, str | None]:
    """``python`` and each of :data:`PACKAGES` -> its installed version (None when not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


__all__ = ["PACKAGES", "package_versions"]
