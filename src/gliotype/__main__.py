"""``python -m gliotype`` = the ``gliotype`` command."""

from gliotype.cli import run

run()
