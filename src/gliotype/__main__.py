"""``python -m gliotype`` = the ``gliotype`` command."""

from gliotype.cli import main

main()
