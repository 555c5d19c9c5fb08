"""Root conftest: puts ``tests/`` on ``sys.path`` so test modules can import shared helpers (``real_data``)."""
