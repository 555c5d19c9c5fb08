"""Logging with levels; rich output on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys

_ROOT = "gliotype"


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``gliotype`` namespace."""
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the ``gliotype`` logger once (idempotent)."""
    logger = logging.getLogger(_ROOT)
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
