"""Small shared helpers: atomic outputs, logging, progress bars, seeding."""

from gliotype.utils.io import atomic_write, atomic_path, write_csv_atomic
from gliotype.utils.logging import get_logger, setup_logging
from gliotype.utils.progress import progress

__all__ = ["atomic_write", "atomic_path", "write_csv_atomic", "get_logger", "setup_logging", "progress"]
