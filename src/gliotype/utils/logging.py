"""Logging with levels; rich output on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys

_ROOT = "gliotype"


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``gliotype`` namespace."""
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record is emitted, not as it was when the handler
    was made (a program, or a test runner, that swaps stderr between two commands)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it
        pass


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the ``gliotype`` logger once (idempotent)."""
    logger = logging.getLogger(_ROOT)
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    logger.setLevel(level)
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
