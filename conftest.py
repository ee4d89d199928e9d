"""Marks each notebook that nbval collects as `slow` (each executes a chapter from the results
store), so that `pytest -m "not slow"` is the quick developer loop; `make test` runs them all."""
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
