"""Atlases and the MNI template (paper section 3.2): AAL nodes, tract edges, ICBM152."""

from gliotype.atlases.template import Template, load_template

__all__ = ["Template", "load_template"]
