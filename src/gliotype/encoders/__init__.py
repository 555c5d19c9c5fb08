"""Encoders of the multi-modal framework (paper section 3.3) and their building blocks."""

from gliotype.encoders.mlp import MLP

__all__ = ["MLP"]
